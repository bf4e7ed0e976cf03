//! The terminal's echo of control keys, off while the live view is drawn.
//!
//! A terminal echoes Ctrl+C as `^C` at the cursor, which sits at the end of
//! the live view's last row. When that row is as wide as the terminal the two
//! characters wrap onto a new row the view does not know about, and its next
//! redraw leaves a stale copy of the old rows above the "Interrupted" notice.
//! Turning `ECHOCTL` off while the view is up keeps the keystroke off the
//! screen (the signal itself is unchanged); the saved mode is put back when
//! the view ends, and before an exit on a second Ctrl+C.

use std::sync::Mutex;

#[cfg(unix)]
type Saved = (std::os::fd::OwnedFd, rustix::termios::Termios);
#[cfg(not(unix))]
type Saved = ();

static SAVED: Mutex<Option<Saved>> = Mutex::new(None);

/// Puts the terminal's saved mode back when dropped.
pub(crate) struct QuietControlKeys(());

impl QuietControlKeys {
    /// Stops the terminal on stderr echoing control keys, if it is one.
    pub(crate) fn new() -> Self {
        #[cfg(unix)]
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            return Self::on(fd);
        }
        QuietControlKeys(())
    }

    /// Stops the terminal open on `fd` echoing control keys; nothing happens
    /// when `fd` is no terminal or echoes none already.
    #[cfg(unix)]
    fn on(fd: std::os::fd::OwnedFd) -> Self {
        use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
        if let Ok(mode) = tcgetattr(&fd) {
            if mode.local_modes.contains(LocalModes::ECHOCTL) {
                let mut quiet = mode.clone();
                quiet.local_modes.remove(LocalModes::ECHOCTL);
                if tcsetattr(&fd, OptionalActions::Now, &quiet).is_ok() {
                    if let Ok(mut saved) = SAVED.lock() {
                        *saved = Some((fd, mode));
                    }
                }
            }
        }
        QuietControlKeys(())
    }
}

#[cfg(unix)]
use std::os::fd::AsFd;

impl Drop for QuietControlKeys {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts back the mode saved by [`QuietControlKeys::new`], once; a no-op
/// when nothing was changed.
pub(crate) fn restore() {
    let Ok(mut saved) = SAVED.lock() else { return };
    #[cfg(unix)]
    if let Some((fd, mode)) = saved.take() {
        let _ = rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &mode);
    }
    #[cfg(not(unix))]
    saved.take();
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use rustix::fs::{open, Mode, OFlags};
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    use rustix::termios::{tcgetattr, LocalModes};

    #[test]
    fn control_keys_are_not_echoed_while_the_view_is_up_and_echoed_after() {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("a pseudo-terminal");
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let tty = open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY,
            Mode::empty(),
        )
        .unwrap();
        let echoes = |fd: &std::os::fd::OwnedFd| {
            tcgetattr(fd)
                .unwrap()
                .local_modes
                .contains(LocalModes::ECHOCTL)
        };
        assert!(echoes(&tty), "a new terminal echoes control keys");

        let guard = QuietControlKeys::on(tty.try_clone().unwrap());
        assert!(!echoes(&tty), "off while the view is up");
        drop(guard);
        assert!(echoes(&tty), "back on when the view ends");

        // An exit on a second Ctrl+C restores without the guard's drop.
        let guard = QuietControlKeys::on(tty.try_clone().unwrap());
        assert!(!echoes(&tty));
        restore();
        assert!(echoes(&tty));
        std::mem::forget(guard);

        // Not a terminal: nothing changes, nothing is saved.
        let file = tempfile::tempfile().unwrap();
        let _g = QuietControlKeys::on(file.into());
        assert!(SAVED.lock().unwrap().is_none());
    }
}

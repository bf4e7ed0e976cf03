//! `peak-rss REPORT PROGRAM [ARGS...]`: runs PROGRAM with the caller's
//! stdio, environment and folder, waits for it with `wait4(2)` and writes
//! `<peak RSS in KiB> <exit code, or 128 + signal> <user CPU s> <system CPU s>`
//! to the file REPORT, all four from that one `wait4` call (`ru_maxrss`,
//! `ru_utime`, `ru_stime`: the program's own threads, and any children it
//! waited for). Its own exit code is the program's.
//!
//! Why not `wait4` from the benchmark harness itself: Linux carries a
//! process's peak RSS across `execve`, and a child forked from the harness
//! starts as a copy of the harness (25 MB and more of Python), so every
//! measured process looked at least that big. Forked from this small
//! program, the baseline is this program's ~2 MB.
//!
//! SIGTERM or SIGINT to this program kills the child with SIGKILL and still
//! writes the report, so a run stopped at a time cap keeps its peak RSS.

use std::io::Write;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicI32, Ordering};

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn stop_child(_: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(report), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: peak-rss REPORT PROGRAM [ARGS...]");
        return ExitCode::from(2);
    };
    let child = match Command::new(&program).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("peak-rss: cannot start {}: {e}", program.to_string_lossy());
            return ExitCode::from(127);
        }
    };
    let pid = child.id() as libc::pid_t;
    CHILD.store(pid, Ordering::SeqCst);
    let handler: extern "C" fn(libc::c_int) = stop_child;
    // SAFETY: the handler only calls kill(2).
    unsafe {
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
    }
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, filled in by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; pid is our own child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            eprintln!("peak-rss: wait4: {}", std::io::Error::last_os_error());
            return ExitCode::from(125);
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let (user, sys) = (seconds(usage.ru_utime), seconds(usage.ru_stime));
    let written = std::fs::File::create(&report)
        .and_then(|mut f| writeln!(f, "{} {code} {user} {sys}", usage.ru_maxrss));
    if let Err(e) = written {
        eprintln!("peak-rss: cannot write {}: {e}", report.to_string_lossy());
        return ExitCode::from(125);
    }
    ExitCode::from(u8::try_from(code).unwrap_or(255))
}

/// A `timeval` as seconds with microsecond digits, e.g. `12.034567`.
fn seconds(t: libc::timeval) -> String {
    format!("{}.{:06}", t.tv_sec, t.tv_usec)
}

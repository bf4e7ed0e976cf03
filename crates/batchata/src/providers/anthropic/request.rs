//! Building Anthropic Message Batches request bodies from jobs.

use crate::error::{Error, Result};
use crate::job::{Message, Role};

/// Anthropic needs user and assistant turns to alternate; refuses two in a row.
pub fn check_alternation(job_id: &str, msgs: &[Message]) -> Result<()> {
    let mut last: Option<Role> = None;
    for (i, m) in msgs.iter().enumerate() {
        if m.role == Role::System {
            continue;
        }
        if last == Some(m.role) {
            return Err(Error::job_field(
                job_id,
                &format!("messages[{i}]"),
                format!(
                    "two {} messages in a row; Anthropic needs user and assistant turns to alternate — merge them into one message",
                    m.role.as_str()
                ),
            ));
        }
        last = Some(m.role);
    }
    Ok(())
}

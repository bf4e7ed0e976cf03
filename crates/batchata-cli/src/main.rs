//! The `batchata` command-line tool.
fn main() {}

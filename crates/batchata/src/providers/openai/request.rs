//! Building OpenAI Batch request lines from jobs.

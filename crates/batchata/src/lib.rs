//! batchata

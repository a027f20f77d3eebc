//! The `http-poll` task end to end.

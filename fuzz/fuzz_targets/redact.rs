//! Fuzzes the Redactor: a known secret never survives in any of the shapes it takes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dockhand_policy::fuzzing::redact(data));

//! Fuzzes the agent codec: argument lists and report lines round-trip, and nothing panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dockhand_jobs::fuzzing::agent_codec(data));

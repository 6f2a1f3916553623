//! Arbitrary bytes as a segment image: every protocol operation must return (Ok or an error),
//! never panic, hang or trip a sanitizer. See `ccs_protocol::fuzzing` for how the bytes become
//! segments; `crates/ccs-protocol/tests/fuzz_corpus.rs` replays the corpus as a regular test.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ccs_protocol::fuzzing::run_image(data);
});

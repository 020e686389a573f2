//! See `airlock_fuzz::pg_codec` (fuzz/src/pg.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| airlock_fuzz::pg_codec(data));

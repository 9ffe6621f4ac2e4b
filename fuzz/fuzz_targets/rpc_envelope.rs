#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringport_fuzz::rpc::rpc_envelope(data));

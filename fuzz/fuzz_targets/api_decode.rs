//! The control protocol decoder: any frame body decodes to a valid request or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = rvs_api::decode_request(data) {
        // whatever decodes has passed validation and must re-encode and decode the same
        let again = rvs_api::decode_request(&rvs_api::encode_request(&req)).expect("round trip");
        assert_eq!(again, req);
    }
    let _ = rvs_api::decode_response(data);
});

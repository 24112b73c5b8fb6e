//! Arbitrary bytes as the body of POST /mutate and POST /validate, through `Admission::review` (what the server's
//! handler calls) with the shipped policies, a tenant and every default switched on.
//!
//! Asserts: no panic (a panic inside a rule, which the server catches and answers with a 500 denial, counts as a
//! crash too); every answer is a well-formed AdmissionReview with the request's uid, a denial has a status, a patch
//! is base64 of a non-empty JSON patch with patchType JSONPatch and only on /mutate; every refusal is a 400 with a
//! known reason. When /mutate answers with a patch, it applies to the object it was computed from.

#![no_main]

use beamstack::admission::Endpoint;
use beamstack_fuzz::{admission, check_answer, patch_of, reset};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let admission = admission();
    for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
        reset(admission);
        let answer = admission.review(endpoint, data);
        check_answer(endpoint, data, &answer);
        if let Ok(outcome) = &answer
            && let Some(patch) = patch_of(outcome)
            // (Fields serde skips are not checked for UTF-8, so an answered body may not parse as a Value.)
            && let Ok(review) = serde_json::from_slice::<Value>(data)
        {
            let mut object = review["request"]["object"].clone();
            json_patch::patch(&mut object, &patch).expect("the mutate patch applies to the object");
        }
    }
});

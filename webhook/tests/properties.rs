//! Property: whatever extra fields an object carries, anywhere, mutation keeps every one of them, keeps every
//! original value, and a second pass over its own output yields no patch.

mod common;

use beamstack::admission::{Admission, Endpoint};
use beamstack::config::{Config, Placement};
use common::{fixture, review};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Every JSON pointer in `value` that leads to an object, where a field can be added.
fn object_pointers(value: &Value, pointer: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            out.push(pointer.clone());
            for (key, child) in map {
                object_pointers(
                    child,
                    format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                object_pointers(child, format!("{pointer}/{index}"), out);
            }
        }
        _ => {}
    }
}

/// Every leaf (scalar, empty object or empty array) with its pointer.
fn leaves(value: &Value, pointer: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                leaves(
                    child,
                    format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, child) in items.iter().enumerate() {
                leaves(child, format!("{pointer}/{index}"), out);
            }
        }
        other => out.push((pointer, other.clone())),
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z0-9._-]{1,10}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Extra fields: (which object, a key no schema knows, any value).
fn extras() -> impl Strategy<Value = Vec<(prop::sample::Index, String, Value)>> {
    prop::collection::vec((any::<prop::sample::Index>(), "x-[a-z]{1,8}", arbitrary_json()), 1..8)
}

fn config() -> Config {
    let mut config = Config::default();
    config.flink.placement = Placement {
        tolerations: vec![Default::default()],
        node_selector: [("pool".to_owned(), "beam".to_owned())].into(),
        priority_class_name: Some("batch".into()),
    };
    config.spark.placement = config.flink.placement.clone();
    config.spark.volcano_queue = Some("q".into());
    config
}

fn mutate(admission: &Admission, object: &Value) -> json_patch::Patch {
    let body = serde_json::to_vec(&review("CREATE", object, None)).unwrap();
    let outcome = admission.review(Endpoint::Mutate, &body).unwrap();
    assert!(outcome.review.response.allowed);
    outcome.review.decoded_patch().unwrap_or(json_patch::Patch(Vec::new()))
}

fn check(name: &str, additions: Vec<(prop::sample::Index, String, Value)>) -> Result<(), TestCaseError> {
    let admission = Admission::new(config());
    let mut object = fixture(name);
    let mut pointers = Vec::new();
    object_pointers(&object, String::new(), &mut pointers);
    for (index, key, value) in additions {
        let pointer = index.get(&pointers);
        if let Some(Value::Object(map)) = object.pointer_mut(pointer) {
            map.insert(key, value);
        }
    }
    let patch = mutate(&admission, &object);
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).map_err(|error| TestCaseError::fail(error.to_string()))?;
    let mut original_leaves = Vec::new();
    leaves(&object, String::new(), &mut original_leaves);
    for (pointer, value) in original_leaves {
        let after = patched.pointer(&pointer);
        // An empty object or array may be filled by a default; anything else must be exactly as it was.
        let filled_container =
            matches!(&value, Value::Object(m) if m.is_empty()) || matches!(&value, Value::Array(a) if a.is_empty());
        let null_defaulted = value.is_null() && after.is_some();
        if !(filled_container || null_defaulted) {
            prop_assert_eq!(after, Some(&value), "{} changed at {}", name, pointer);
        }
    }
    let second = mutate(&admission, &patched);
    prop_assert!(second.0.is_empty(), "{}: second pass patched {:?}", name, second);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn flink_pipeline_keeps_unknown_fields(additions in extras()) {
        check("flink-pipeline", additions)?;
    }

    #[test]
    fn flink_plain_keeps_unknown_fields(additions in extras()) {
        check("flink-plain", additions)?;
    }

    #[test]
    fn spark_pipeline_keeps_unknown_fields(additions in extras()) {
        check("spark-pipeline", additions)?;
    }

    #[test]
    fn scheduled_spark_keeps_unknown_fields(additions in extras()) {
        check("scheduled-spark", additions)?;
    }
}

//! Small operations on a JSON object tree that never overwrite what they do not understand.
//!
//! Mutation edits the raw object the API server sent, so fields Beamstack does not model survive untouched.
//! Every helper here refuses (returns `None` or `false`) rather than replace a value of an unexpected type: a
//! `podTemplate: "oops"` is left for validation and the CRD schema to report, never silently turned into `{}`.

use serde_json::{Map, Value};

/// The value at `path`, if every step is an object that has the next key.
pub fn get<'a>(root: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(root, |node, key| node.as_object()?.get(*key))
}

pub(crate) fn get_str<'a>(root: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(root, path).and_then(Value::as_str)
}

/// True when the value at `path` is absent or null: the only case in which a default may be written.
pub(crate) fn is_unset(root: &Value, path: &[&str]) -> bool {
    get(root, path).is_none_or(Value::is_null)
}

/// The object at `path`, creating missing or null steps as empty objects. `None` when a step holds something else.
pub(crate) fn object_at<'a>(root: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut node = root;
    for key in path {
        if node.is_null() {
            *node = Value::Object(Map::new());
        }
        let map = node.as_object_mut()?;
        node = map.entry(*key).or_insert(Value::Null);
    }
    if node.is_null() {
        *node = Value::Object(Map::new());
    }
    node.as_object_mut()
}

/// The array under `key`, creating it when missing or null. `None` when `key` holds something else.
pub(crate) fn array_in<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Vec<Value>> {
    let slot = map.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut()
}

/// The object under `key`, creating it when missing or null. `None` when `key` holds something else.
pub(crate) fn object_in<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let slot = map.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// Sets `map[key]` when it is absent or null. Returns whether it wrote.
pub(crate) fn set_if_unset(map: &mut Map<String, Value>, key: &str, value: Value) -> bool {
    match map.get(key) {
        Some(existing) if !existing.is_null() => false,
        _ => {
            map.insert(key.to_owned(), value);
            true
        }
    }
}

/// Appends each of `items` that is not already in `list` (by equality). Returns how many were added.
pub(crate) fn append_missing(list: &mut Vec<Value>, items: &[Value]) -> usize {
    let mut added = 0;
    for item in items {
        if !list.contains(item) {
            list.push(item.clone());
            added += 1;
        }
    }
    added
}

/// Adds the entries of `defaults` whose keys `map` lacks. Returns whether it added any.
pub(crate) fn add_missing_entries<'a>(
    map: &mut Map<String, Value>,
    defaults: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> bool {
    let mut changed = false;
    for (key, value) in defaults {
        changed |= set_if_unset(map, key, Value::String(value.clone()));
    }
    changed
}

/// The element of `list` whose `name` is `name`, appended as `{"name": name}` when there is none.
/// `None` when an element of that name exists but is not an object.
pub(crate) fn named_entry<'a>(list: &'a mut Vec<Value>, name: &str) -> Option<&'a mut Map<String, Value>> {
    let position = list
        .iter()
        .position(|item| item.get("name").and_then(Value::as_str) == Some(name));
    let index = match position {
        Some(index) => index,
        None => {
            list.push(Value::Object(Map::from_iter([("name".to_owned(), Value::from(name))])));
            list.len() - 1
        }
    };
    list[index].as_object_mut()
}

/// Flattens a Flink configuration (`flinkConfiguration` accepts nested YAML maps since operator 1.10) into dotted
/// keys, so `{kubernetes: {namespace: x}}` and `{"kubernetes.namespace": x}` are the same key to every check.
pub(crate) fn flatten_keys(value: &Value) -> Vec<(String, &Value)> {
    fn walk<'a>(prefix: &str, value: &'a Value, out: &mut Vec<(String, &'a Value)>) {
        match value.as_object() {
            Some(map) => {
                for (key, child) in map {
                    let full = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&full, child, out);
                }
            }
            None if !prefix.is_empty() => out.push((prefix.to_owned(), value)),
            None => {}
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

/// Fills what `slot` lacks from `value`: missing keys, missing list items, an absent value; never overwrites.
/// Returns whether anything changed.
pub(crate) fn merge_missing(slot: &mut Value, value: Value) -> bool {
    match (slot, value) {
        (slot @ Value::Null, value) => {
            *slot = value;
            true
        }
        (Value::Object(existing), Value::Object(wanted)) => {
            let mut changed = false;
            for (key, value) in wanted {
                changed |= merge_missing(existing.entry(key).or_insert(Value::Null), value);
            }
            changed
        }
        (Value::Array(existing), Value::Array(wanted)) => append_missing(existing, &wanted) > 0,
        _ => false,
    }
}

/// Joins a spec path and a field into the dotted form used in change notes and violations.
pub fn dotted(path: &[&str], field: &str) -> String {
    let mut out = path.join(".");
    if !field.is_empty() {
        out.push('.');
        out.push_str(field);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_at_creates_but_never_replaces() {
        let mut value = json!({"spec": {"keep": 1, "podTemplate": null}});
        object_at(&mut value, &["spec", "podTemplate", "spec"])
            .unwrap()
            .insert("x".into(), json!(1));
        assert_eq!(value, json!({"spec": {"keep": 1, "podTemplate": {"spec": {"x": 1}}}}));
        let mut wrong = json!({"spec": {"podTemplate": "oops"}});
        assert!(object_at(&mut wrong, &["spec", "podTemplate", "spec"]).is_none());
        assert_eq!(wrong, json!({"spec": {"podTemplate": "oops"}}));
    }

    #[test]
    fn append_and_entries_are_idempotent() {
        let mut list = vec![json!({"key": "a"})];
        assert_eq!(
            append_missing(&mut list, &[json!({"key": "a"}), json!({"key": "b"})]),
            1
        );
        assert_eq!(
            append_missing(&mut list, &[json!({"key": "a"}), json!({"key": "b"})]),
            0
        );
        let mut map = Map::new();
        map.insert("pool".into(), json!("user"));
        let defaults = [
            ("pool".to_owned(), "beam".to_owned()),
            ("zone".to_owned(), "a".to_owned()),
        ];
        assert!(add_missing_entries(&mut map, defaults.iter().map(|(k, v)| (k, v))));
        assert_eq!(Value::Object(map.clone()), json!({"pool": "user", "zone": "a"}));
        assert!(!add_missing_entries(&mut map, defaults.iter().map(|(k, v)| (k, v))));
    }

    #[test]
    fn named_entries_are_found_or_added_once() {
        let mut list = vec![json!({"name": "a", "image": "x"})];
        named_entry(&mut list, "b").unwrap();
        named_entry(&mut list, "b").unwrap();
        named_entry(&mut list, "a").unwrap().insert("ok".into(), json!(true));
        assert_eq!(
            list,
            vec![json!({"name": "a", "image": "x", "ok": true}), json!({"name": "b"})]
        );
        let mut odd = vec![json!({"name": "a"}), json!("a")];
        assert!(named_entry(&mut odd, "a").is_some());
    }

    #[test]
    fn flink_configuration_keys_flatten() {
        let config = json!({"kubernetes": {"namespace": "x"}, "a.b": "1", "deep": {"er": {"key": true}}});
        let keys: Vec<String> = flatten_keys(&config).into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["kubernetes.namespace", "a.b", "deep.er.key"]);
    }
}

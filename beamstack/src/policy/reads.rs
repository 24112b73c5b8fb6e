//! Which parts of the object a policy's expressions read, so a request converts only those to CEL.
//!
//! Converting the whole object to CEL values was the largest single cost of an admission (about a quarter of its
//! instructions for a 3 KB FlinkDeployment: a map per JSON object, every key hashed, every string copied), while
//! the shipped policies read a dozen fields of it. Each expression's field selections on `object`, `oldObject` and
//! `runnerSpec` are collected at compile time as a trie of field names; a request converts the union over the
//! policies that match it and leaves every other field out.
//!
//! The analysis only ever reads more than needed, never less: a chain of field selections (`object.spec.job.jarURI`,
//! `has(object.metadata.labels)`) reads the subtree at its end whole, whatever is done with it; a variable used in
//! any other way (passed to a function, indexed with `[...]`, compared whole, iterated) is read whole. The values an
//! expression can reach are thus exactly the ones it would reach in the full conversion, so results and errors are
//! unchanged (the tests below compare both on the same expressions).

use super::runtime::{children, to_val};
use cel::IdedExpr;
use cel::common::ast::Expr;
use cel::common::types::{CelMap, CelMapKey, CelString};
use cel::common::value::Val;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};

/// The request variables whose reads are narrowed: the ones holding the (possibly large) object.
pub(crate) const NARROWED: [&str; 3] = ["object", "oldObject", "runnerSpec"];

/// What is read of one JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reads {
    /// All of it.
    Whole,
    /// Only these fields, each read as its entry says; empty when nothing is read.
    Fields(BTreeMap<String, Reads>),
}

impl Default for Reads {
    fn default() -> Self {
        Reads::Fields(BTreeMap::new())
    }
}

impl Reads {
    /// Adds the reading of the subtree at `path` (whole).
    pub fn add_path(&mut self, path: &[&str]) {
        let Reads::Fields(fields) = self else { return };
        match path.split_first() {
            None => *self = Reads::Whole,
            Some((first, rest)) => fields.entry((*first).to_owned()).or_default().add_path(rest),
        }
    }

    /// What is read by either.
    pub fn merge(&mut self, other: &Reads) {
        match (&mut *self, other) {
            (Reads::Whole, _) => {}
            (_, Reads::Whole) => *self = Reads::Whole,
            (Reads::Fields(mine), Reads::Fields(theirs)) => {
                for (name, reads) in theirs {
                    mine.entry(name.clone()).or_default().merge(reads);
                }
            }
        }
    }

    /// `value` as a CEL value holding what is read of it. A selection through something that is not a JSON object
    /// (a list, a scalar) converts that value whole, so the expression fails or succeeds exactly as it would on the
    /// full value.
    pub fn to_val(&self, value: &Json) -> Box<dyn Val> {
        match (self, value) {
            (Reads::Fields(fields), Json::Object(object)) => Box::new(CelMap::from(
                fields
                    .iter()
                    .filter_map(|(name, reads)| {
                        let field = object.get(name)?;
                        Some((CelMapKey::String(CelString::from(name.clone())), reads.to_val(field)))
                    })
                    .collect::<HashMap<_, _>>(),
            )),
            _ => to_val(value),
        }
    }
}

/// What each of [`NARROWED`] an expression reads; a variable it does not mention has no entry.
pub(crate) fn reads_of(expression: &IdedExpr) -> HashMap<&'static str, Reads> {
    let mut reads = HashMap::new();
    walk(expression, &mut reads);
    reads
}

fn narrowed(name: &str) -> Option<&'static str> {
    NARROWED.iter().copied().find(|variable| *variable == name)
}

fn walk(expression: &IdedExpr, reads: &mut HashMap<&'static str, Reads>) {
    match &expression.expr {
        Expr::Ident(name) => {
            if let Some(variable) = narrowed(name) {
                reads.entry(variable).or_default().add_path(&[]);
            }
        }
        Expr::Select(select) => {
            // The longest chain of selections down to a variable: `object.spec.job` reads object's spec.job.
            let mut path = vec![select.field.as_str()];
            let mut operand = &select.operand;
            while let Expr::Select(inner) = &operand.expr {
                path.push(inner.field.as_str());
                operand = &inner.operand;
            }
            match &operand.expr {
                Expr::Ident(name) if narrowed(name).is_some() => {
                    path.reverse();
                    let variable = narrowed(name).unwrap_or_default();
                    reads.entry(variable).or_default().add_path(&path);
                }
                _ => walk(operand, reads),
            }
        }
        _ => children(expression).into_iter().for_each(|child| walk(child, reads)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::runtime::{CostLimit, Runtime};
    use serde_json::json;

    fn object() -> Json {
        json!({
            "apiVersion": "flink.apache.org/v1beta1",
            "kind": "FlinkDeployment",
            "metadata": {"name": "wordcount", "labels": {"team": "data", "tier": "gold"}, "annotations": {}},
            "spec": {
                "flinkVersion": "v1_19",
                "image": "registry.example.com/beam:2.62",
                "job": {"jarURI": "local:///opt/job.jar", "parallelism": 4, "args": ["--a", "--b"], "upgradeMode": "savepoint"},
                "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "2"},
                "taskManager": {"replicas": 3, "resource": {"cpu": 2, "memory": "4Gi"}},
                "podTemplate": {"spec": {"containers": [{"name": "flink-main-container", "image": "x"}]}}
            }
        })
    }

    #[test]
    fn a_selection_chain_reads_its_end_whole_and_anything_else_reads_the_variable_whole() {
        let runtime = Runtime::new();
        let reads = |source: &str| reads_of(runtime.compile(source).unwrap().ast());
        let mut expected = Reads::default();
        expected.add_path(&["spec", "job", "parallelism"]);
        expected.add_path(&["metadata", "labels"]);
        assert_eq!(
            reads("object.spec.job.parallelism <= 8 && has(object.metadata.labels)")["object"],
            expected
        );
        for whole in [
            "object == oldObject",
            "size(object) > 0",
            "object['spec'] != null",
            "object.?spec.hasValue()",
        ] {
            assert_eq!(reads(whole)["object"], Reads::Whole, "{whole}");
        }
        assert!(!reads("tenant == null").contains_key("object"));
        let mut spec = Reads::default();
        spec.add_path(&["spec"]);
        spec.add_path(&["spec", "job"]);
        assert_eq!(spec, {
            let mut only = Reads::default();
            only.add_path(&["spec"]);
            only
        });
    }

    #[test]
    fn merging_keeps_every_read_and_whole_wins() {
        let mut left = Reads::default();
        left.add_path(&["spec", "job"]);
        let mut right = Reads::default();
        right.add_path(&["metadata"]);
        right.add_path(&["spec", "image"]);
        left.merge(&right);
        let mut expected = Reads::default();
        for path in [&["spec", "job"][..], &["spec", "image"], &["metadata"]] {
            expected.add_path(path);
        }
        assert_eq!(left, expected);
        left.merge(&Reads::Whole);
        assert_eq!(left, Reads::Whole);
    }

    /// The point of the module: every expression gives the same result, or the same error, on the narrowed object
    /// as on the whole one.
    #[test]
    fn expressions_evaluate_the_same_on_the_narrowed_object() {
        let runtime = Runtime::new();
        let object = object();
        let expressions = [
            "object.spec.job.parallelism <= 8",
            "object.spec.job.parallelism * object.spec.taskManager.replicas",
            "has(object.spec.job.savepointPath)",
            "has(object.spec.job.upgradeMode) && object.spec.job.upgradeMode == 'savepoint'",
            "object.spec.missing.deeper == 1",
            "object.spec.job.args.all(a, a.startsWith('--'))",
            "object.spec.job.args[1]",
            "object.spec.job.args.size()",
            "object.spec.image.startsWith('registry.example.com/')",
            "object.spec.image.nothere",
            "object.metadata.labels.team",
            "'tier' in object.metadata.labels",
            "object.metadata.labels.exists(k, k == 'team')",
            "object.spec.podTemplate.spec.containers.map(c, c.image)",
            "object.spec.flinkConfiguration['taskmanager.numberOfTaskSlots']",
            "object.metadata.annotations == {}",
            "object.spec.taskManager.resource",
            "object.metadata.name + '-' + object.spec.flinkVersion",
            "size(object.spec)",
            "object.?spec.?job.?jarURI.orValue('none')",
            "[object.spec.job.jarURI, object.kind]",
            "{'v': object.spec.flinkVersion}.v",
            "object.spec.job.args.exists(object, object == '--b')",
        ];
        for source in expressions {
            let compiled = runtime.compile(source).unwrap();
            let evaluate = |value: Box<dyn Val>| {
                let mut scope = runtime.scope();
                scope.add_variable_as_val("object", value);
                runtime.evaluate(&compiled, &scope, CostLimit::default())
            };
            let reads = reads_of(compiled.ast()).remove("object").unwrap_or_default();
            assert_eq!(evaluate(reads.to_val(&object)), evaluate(to_val(&object)), "{source}");
        }
    }

    #[test]
    fn a_narrowed_object_holds_only_what_is_read() {
        let mut reads = Reads::default();
        reads.add_path(&["spec", "job", "parallelism"]);
        reads.add_path(&["spec", "job", "args", "first"]);
        reads.add_path(&["metadata", "absent"]);
        let runtime = Runtime::new();
        let compiled = runtime.compile("object").unwrap();
        let mut scope = runtime.scope();
        scope.add_variable_as_val("object", reads.to_val(&object()));
        let value = runtime.evaluate(&compiled, &scope, CostLimit::default()).unwrap();
        assert_eq!(
            crate::policy::runtime::to_json(&value).unwrap(),
            json!({"spec": {"job": {"parallelism": 4, "args": ["--a", "--b"]}}, "metadata": {}})
        );
    }
}

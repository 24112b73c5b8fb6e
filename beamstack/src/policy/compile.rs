//! A RunnerPolicy compiled: every expression parsed and checked once, match rules parsed, errors located.

use super::model::{Action, FailurePolicy, MergeStrategy, RunnerPolicy};
use super::reads::Reads;
use super::runtime::{Compiled, Runtime};
use crate::kinds::RunnerKind;
use kube::ResourceExt;
use kube::core::Selector;
use std::collections::HashMap;

/// Why a policy cannot be used: the field, and the CEL position when it is an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub policy: String,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunnerPolicy {:?}: {}: {}", self.policy, self.field, self.message)
    }
}

#[derive(Debug, Clone)]
pub struct CompiledValidation {
    pub expression: Compiled,
    pub message: Option<String>,
    pub message_expression: Option<Compiled>,
    pub reason: Option<String>,
    pub field_path: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CompiledMutation {
    /// Path segments from the object root, or from the runner spec when `from_runner_spec`.
    pub path: Vec<String>,
    pub from_runner_spec: bool,
    pub expression: Compiled,
    pub strategy: MergeStrategy,
    /// The path as written, for change notes.
    pub written: String,
}

#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub name: String,
    pub action: Action,
    pub failure_policy: FailurePolicy,
    pub kinds: Vec<RunnerKind>,
    pub creates: bool,
    pub updates: bool,
    pub namespace_selector: Option<Selector>,
    pub object_selector: Option<Selector>,
    pub match_conditions: Vec<(String, Compiled)>,
    pub variables: Vec<(String, Compiled)>,
    pub validations: Vec<CompiledValidation>,
    pub mutations: Vec<CompiledMutation>,
    /// The request-level variables its expressions use: only those are built for a request.
    pub uses: Vec<&'static str>,
    /// What its expressions read of `object`, `oldObject` and `runnerSpec`: only that is converted for a request.
    pub reads: HashMap<&'static str, Reads>,
}

impl CompiledPolicy {
    pub fn applies_to(&self, kind: RunnerKind, create: bool) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&kind)) && if create { self.creates } else { self.updates }
    }
}

fn is_identifier(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

/// How many fields deep a mutation's path may go (Kubernetes objects' own paths stay well below).
pub(crate) const MAX_MUTATION_PATH: usize = 32;

/// Compiles a policy; the first problem found is reported with its field and position.
pub fn compile(policy: &RunnerPolicy, runtime: &Runtime) -> Result<CompiledPolicy, PolicyError> {
    let name = policy.name_any();
    let error = |field: String, message: String| PolicyError {
        policy: name.clone(),
        field,
        message,
    };
    let expression = |field: String, source: &str| {
        if source.trim().is_empty() {
            return Err(error(field, "the expression is empty".into()));
        }
        runtime
            .compile(source)
            .map_err(|compile_error| error(field, format!("CEL {compile_error}")))
    };
    let spec = &policy.spec;
    let mut kinds = Vec::new();
    for (index, kind) in spec.match_rules.kinds.iter().enumerate() {
        let found = RunnerKind::ALL.into_iter().find(|candidate| candidate.kind() == kind);
        match found {
            Some(kind) => kinds.push(kind),
            None => {
                return Err(error(
                    format!("spec.match.kinds[{index}]"),
                    format!(
                        "`{kind}` is not a runner kind: use {}",
                        RunnerKind::ALL.map(|kind| kind.kind()).join(", ")
                    ),
                ));
            }
        }
    }
    let (mut creates, mut updates) = (
        spec.match_rules.operations.is_empty(),
        spec.match_rules.operations.is_empty(),
    );
    for (index, operation) in spec.match_rules.operations.iter().enumerate() {
        match operation.as_str() {
            "CREATE" => creates = true,
            "UPDATE" => updates = true,
            "*" => (creates, updates) = (true, true),
            other => {
                return Err(error(
                    format!("spec.match.operations[{index}]"),
                    format!("`{other}` is not an operation policies see: use CREATE or UPDATE"),
                ));
            }
        }
    }
    let selector = |field: &str, selector: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>| {
        selector
            .clone()
            .map(Selector::try_from)
            .transpose()
            .map_err(|parse_error| error(field.to_owned(), parse_error.to_string()))
    };
    let namespace_selector = selector("spec.match.namespaceSelector", &spec.match_rules.namespace_selector)?;
    let object_selector = selector("spec.match.objectSelector", &spec.match_rules.object_selector)?;
    let mut match_conditions = Vec::new();
    for (index, condition) in spec.match_conditions.iter().enumerate() {
        let field = format!("spec.matchConditions[{index}].expression");
        match_conditions.push((condition.name.clone(), expression(field, &condition.expression)?));
    }
    let mut variables = Vec::new();
    for (index, variable) in spec.variables.iter().enumerate() {
        if !is_identifier(&variable.name) {
            return Err(error(
                format!("spec.variables[{index}].name"),
                format!("`{}` is not a CEL identifier: use letters, digits and _", variable.name),
            ));
        }
        if variables.iter().any(|(existing, _)| *existing == variable.name) {
            return Err(error(
                format!("spec.variables[{index}].name"),
                format!("`{}` is defined twice", variable.name),
            ));
        }
        let field = format!("spec.variables[{index}].expression");
        variables.push((variable.name.clone(), expression(field, &variable.expression)?));
    }
    let mut validations = Vec::new();
    for (index, validation) in spec.validations.iter().enumerate() {
        validations.push(CompiledValidation {
            expression: expression(format!("spec.validations[{index}].expression"), &validation.expression)?,
            message: validation.message.clone(),
            message_expression: validation
                .message_expression
                .as_deref()
                .map(|source| expression(format!("spec.validations[{index}].messageExpression"), source))
                .transpose()?,
            reason: validation.reason.clone(),
            field_path: validation.field_path.clone(),
        });
    }
    let mut mutations = Vec::new();
    for (index, mutation) in spec.mutations.iter().enumerate() {
        let (from_runner_spec, rest) = match mutation.path.strip_prefix("runnerSpec.") {
            Some(rest) => (true, rest),
            None => (false, mutation.path.as_str()),
        };
        let path: Vec<String> = rest.split('.').map(str::to_owned).collect();
        let field = format!("spec.mutations[{index}].path");
        if path.iter().any(String::is_empty) {
            return Err(error(
                field,
                format!(
                    "`{}` is not a dotted path such as spec.podTemplate.spec.nodeSelector",
                    mutation.path
                ),
            ));
        }
        // A patch nested deeper than 128 levels is one the webhook's own parser refuses when the object comes back
        // (found by fuzz/fuzz_targets/policy.rs with a path of hundreds of segments).
        if path.len() > MAX_MUTATION_PATH {
            return Err(error(
                field,
                format!("the path has {} fields; at most {MAX_MUTATION_PATH}", path.len()),
            ));
        }
        if !from_runner_spec && !matches!(path[0].as_str(), "spec" | "metadata") {
            return Err(error(field, "mutations may only change spec and metadata".into()));
        }
        if !from_runner_spec && path.len() < 2
            || (path[0] == "metadata" && !matches!(path[1].as_str(), "labels" | "annotations"))
        {
            return Err(error(
                field,
                "mutations may change spec.<field>, metadata.labels or metadata.annotations".into(),
            ));
        }
        mutations.push(CompiledMutation {
            path,
            from_runner_spec,
            expression: expression(format!("spec.mutations[{index}].expression"), &mutation.expression)?,
            strategy: mutation.strategy,
            written: mutation.path.clone(),
        });
    }
    if validations.is_empty() && mutations.is_empty() {
        return Err(error(
            "spec".into(),
            "a policy needs at least one validation or mutation".into(),
        ));
    }
    let mut uses: Vec<&'static str> = Vec::new();
    let expressions = match_conditions
        .iter()
        .map(|(_, expression)| expression)
        .chain(variables.iter().map(|(_, expression)| expression))
        .chain(
            validations
                .iter()
                .flat_map(|validation| std::iter::once(&validation.expression).chain(&validation.message_expression)),
        )
        .chain(mutations.iter().map(|mutation| &mutation.expression));
    let mut reads: HashMap<&'static str, Reads> = HashMap::new();
    for expression in expressions {
        for variable in super::runtime::referenced_variables(expression) {
            if !uses.contains(&variable) {
                uses.push(variable);
            }
        }
        for (variable, read) in super::reads::reads_of(expression.ast()) {
            reads.entry(variable).or_default().merge(&read);
        }
    }
    Ok(CompiledPolicy {
        uses,
        reads,
        name: name.clone(),
        action: spec.action,
        failure_policy: spec.failure_policy,
        kinds,
        creates,
        updates,
        namespace_selector,
        object_selector,
        match_conditions,
        variables,
        validations,
        mutations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mutation_paths_deeper_than_the_limit_are_refused() {
        // Regression (fuzz/regressions/policy-deep-mutation-path.bin): a path of hundreds of fields made a patch
        // nested past the 128 levels serde_json (and the webhook's own review parser) read.
        let policy = |path: String| -> RunnerPolicy {
            serde_json::from_value(json!({
                "apiVersion": "beamstack.dev/v1alpha1", "kind": "RunnerPolicy", "metadata": {"name": "deep"},
                "spec": {"mutations": [{"path": path, "expression": "'x'"}]}
            }))
            .unwrap()
        };
        let runtime = Runtime::new();
        let deep = format!("spec{}", ".a".repeat(200));
        let error = compile(&policy(deep), &runtime).unwrap_err();
        assert_eq!(error.field, "spec.mutations[0].path");
        assert!(error.message.contains("at most 32"), "{error}");
        let fine = format!("spec{}", ".a".repeat(MAX_MUTATION_PATH - 1));
        assert!(compile(&policy(fine), &runtime).is_ok());
    }
}

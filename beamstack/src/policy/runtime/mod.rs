//! The CEL runtime policies run in: one shared environment, functions Kubernetes CEL users expect, conversion
//! between JSON and CEL values, and a hard cost limit.
//!
//! - Compile once: `Runtime::compile` parses, checks every identifier against the variables a policy can see
//!   (cel has no type checker, so a typo like `objet.spec` would otherwise only fail at admission time), and
//!   rewrites every comprehension so each iteration passes through a meter.
//! - Cost limit: comprehensions (`all`, `exists`, `map`, `filter`, ...) are the only way a CEL expression does more
//!   than linear work. The meter counts their iterations and checks a deadline; past either limit the evaluation
//!   fails with `CostExceeded`, which the caller answers per the policy's failurePolicy. Nothing is left running.
//! - Regexes are compiled once and cached (cel's own `matches` recompiles the pattern on every call).
//! - Numbers: JSON integers become CEL `int`, as in Kubernetes, so `replicas * 2` works.
//!
//! Its parts: `checking` (names a policy may use), `metering` (the cost limit), `values` (JSON <-> CEL),
//! `strings` and `quantities` (the function libraries beyond CEL's standard one).

mod checking;
mod metering;
mod quantities;
mod strings;
mod values;

pub(crate) use checking::children;
pub use quantities::CelQuantity;
pub(crate) use values::referenced_variables;
pub use values::{to_cel, to_json, to_val};

use cel::{Context, Env, ExecutionError, IdedExpr, Value};
use quantities::{
    flink_memory, is_quantity, quantity, quantity_add, quantity_as_float, quantity_as_integer, quantity_as_string,
    quantity_compare_to, quantity_div, quantity_is_greater_than, quantity_is_less_than, quantity_mul, quantity_sub,
    spark_memory, sum_quantities,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use strings::{find, find_all, join, lower_ascii, matches, normalize_image, split, upper_ascii};

/// The variables every policy expression may use.
pub(crate) const VARIABLES: [&str; 13] = [
    "object",
    "oldObject",
    "request",
    "namespaceObject",
    "variables",
    "tenant",
    "usage",
    "demand",
    "runnerSpec",
    "kind",
    "containers",
    "images",
    "volumes",
];

/// A compile error with its place in the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

/// Why an evaluation produced no value.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalError {
    /// The expression went over its iteration budget or its deadline and was stopped.
    CostExceeded(String),
    /// Any other CEL error (no such key, wrong types, a function's own error).
    Failed(String),
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::CostExceeded(message) | EvalError::Failed(message) => f.write_str(message),
        }
    }
}

/// How much work one expression may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostLimit {
    /// Comprehension iterations, counted across nested comprehensions.
    pub iterations: u64,
    /// Wall-clock time, checked as iterations happen.
    pub time: Duration,
}

impl Default for CostLimit {
    /// About what Kubernetes allows one expression (1,000,000 cost units, roughly 0.1 s).
    fn default() -> Self {
        Self {
            iterations: 1_000_000,
            time: Duration::from_millis(100),
        }
    }
}

/// The shared environment and function table. Build once; evaluate from any thread.
pub struct Runtime {
    env: Arc<Env>,
    root: Context<'static, 'static>,
    known_functions: HashSet<String>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runtime")
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

/// A compiled, metered expression.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub source: String,
    expression: IdedExpr,
}

impl Compiled {
    /// The checked, metered expression (for analyses such as `reads`).
    pub fn ast(&self) -> &IdedExpr {
        &self.expression
    }
}

impl Runtime {
    pub fn new() -> Self {
        let env = Arc::new(Env::stdlib());
        let mut root = Context::with_env(Arc::clone(&env));
        let mut known = HashSet::new();
        let mut add = |name: &str, result: Result<(), cel::DeclarationError>| {
            // Our names are chosen not to collide with the standard library; a collision is a programming error.
            result.unwrap_or_else(|error| panic!("CEL function {name}: {error:?}"));
            known.insert(name.to_owned());
        };
        add(metering::METER, root.add_function(metering::METER, metering::meter));
        add("matches", root.add_function("matches", matches));
        add("find", root.add_function("find", find));
        add("findAll", root.add_function("findAll", find_all));
        add("quantity", root.add_function("quantity", quantity));
        add("isQuantity", root.add_function("isQuantity", is_quantity));
        add("add", root.add_function("add", quantity_add));
        add("sub", root.add_function("sub", quantity_sub));
        add("mul", root.add_function("mul", quantity_mul));
        add("div", root.add_function("div", quantity_div));
        add("isLessThan", root.add_function("isLessThan", quantity_is_less_than));
        add(
            "isGreaterThan",
            root.add_function("isGreaterThan", quantity_is_greater_than),
        );
        add("compareTo", root.add_function("compareTo", quantity_compare_to));
        add("asInteger", root.add_function("asInteger", quantity_as_integer));
        add(
            "asApproximateFloat",
            root.add_function("asApproximateFloat", quantity_as_float),
        );
        add("asString", root.add_function("asString", quantity_as_string));
        add("sumQuantities", root.add_function("sumQuantities", sum_quantities));
        add("flinkMemory", root.add_function("flinkMemory", flink_memory));
        add("sparkMemory", root.add_function("sparkMemory", spark_memory));
        add("normalizeImage", root.add_function("normalizeImage", normalize_image));
        add("lowerAscii", root.add_function("lowerAscii", lower_ascii));
        add("upperAscii", root.add_function("upperAscii", upper_ascii));
        add("join", root.add_function("join", join));
        add("split", root.add_function("split", split));
        for name in checking::STANDARD_FUNCTIONS {
            known.insert(name.to_owned());
        }
        Self {
            env,
            root,
            known_functions: known,
        }
    }

    /// Parses an expression, checks its references and meters its comprehensions.
    pub fn compile(&self, source: &str) -> Result<Compiled, CompileError> {
        let program = self.env.compile(source).map_err(|errors| {
            let first = errors.errors.first();
            CompileError {
                line: first.map_or(1, |error| error.pos.0.max(1) as usize),
                column: first.map_or(1, |error| error.pos.1.max(0) as usize + 1),
                message: first.map_or_else(|| errors.to_string(), |error| error.msg.clone()),
            }
        })?;
        let info = program.source_info();
        let position = |id: u64| {
            let offset = info.offset_for(id).map_or(0, |(start, _)| start as usize);
            line_column(source, offset)
        };
        let mut scope: Vec<String> = VARIABLES.iter().map(|name| (*name).to_owned()).collect();
        let root = program.expression();
        checking::check_references(&root.expr, &mut scope, &self.known_functions).map_err(|(id, message)| {
            let (line, column) = position(if id == 0 { root.id } else { id });
            CompileError { line, column, message }
        })?;
        let mut expression = program.expression().clone();
        let mut next_id = checking::max_id(&expression) + 1;
        metering::meter_comprehensions(&mut expression, &mut next_id);
        Ok(Compiled {
            source: source.to_owned(),
            expression,
        })
    }

    /// A scope holding the request's variables; evaluate any number of expressions in it.
    pub fn scope(&self) -> Context<'_, 'static> {
        self.root.new_inner_scope()
    }

    /// Evaluates one expression under a cost limit.
    pub fn evaluate(
        &self,
        compiled: &Compiled,
        scope: &Context<'_, 'static>,
        limit: CostLimit,
    ) -> Result<Value, EvalError> {
        self.evaluate_counted(compiled, scope, limit).0
    }

    /// Evaluates one expression under a cost limit, also returning the comprehension iterations it used.
    pub fn evaluate_counted(
        &self,
        compiled: &Compiled,
        scope: &Context<'_, 'static>,
        limit: CostLimit,
    ) -> (Result<Value, EvalError>, u64) {
        metering::start(limit);
        let result = scope.resolve(&compiled.expression);
        let (exceeded, used) = metering::finish(limit);
        let result = match (result, exceeded) {
            (Ok(value), _) => Ok(value),
            (Err(_), Some("iterations")) => Err(EvalError::CostExceeded(format!(
                "cost limit exceeded: more than {} comprehension iterations",
                limit.iterations
            ))),
            (Err(_), Some(_)) => Err(EvalError::CostExceeded(format!(
                "time limit exceeded: ran longer than {} ms",
                limit.time.as_millis()
            ))),
            (Err(error), None) => Err(EvalError::Failed(describe(&error))),
        };
        (result, used)
    }
}

fn describe(error: &ExecutionError) -> String {
    match error {
        ExecutionError::NoSuchKey(key) => format!("no such key: {key} (guard it with has() or `in`)"),
        ExecutionError::UndeclaredReference(name) => format!("undeclared reference to {name}"),
        ExecutionError::FunctionError { function, message } => format!("{function}: {message}"),
        other => format!("{other:?}"),
    }
}

fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for (index, character) in source.chars().enumerate() {
        if index == offset {
            break;
        }
        if character == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Instant;

    fn eval(runtime: &Runtime, source: &str, object: serde_json::Value) -> Result<Value, EvalError> {
        let compiled = runtime
            .compile(source)
            .unwrap_or_else(|error| panic!("{source}: {error}"));
        let mut scope = runtime.scope();
        scope.add_variable_from_value("object", to_cel(&object));
        runtime.evaluate(&compiled, &scope, CostLimit::default())
    }

    #[test]
    fn json_integers_are_ints() {
        let runtime = Runtime::new();
        let object = json!({"spec": {"replicas": 2, "cpu": 0.5}});
        assert_eq!(
            eval(&runtime, "object.spec.replicas * 2 == 4", object.clone()),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval(&runtime, "object.spec.cpu * 2.0 == 1.0", object),
            Ok(Value::Bool(true))
        );
    }

    #[test]
    fn quantities_do_arithmetic_kubernetes_cel_cannot() {
        let runtime = Runtime::new();
        let cases = [
            "quantity('1Gi').add(quantity('512Mi')) == quantity('1536Mi')",
            "quantity('2Gi').mul(3).isGreaterThan(quantity('5Gi'))",
            "quantity('3').div(2) == quantity('1500m')",
            "quantity('500m').isLessThan('1')",
            "quantity('1Gi').compareTo(quantity('1024Mi')) == 0",
            "sumQuantities(['1', '500m', quantity('1500m')]) == quantity('3')",
            "quantity('2Gi').asInteger() == 2147483648",
            "flinkMemory('2048m') == quantity('2Gi')",
            "sparkMemory('1g').add(quantity('384Mi')).asString() == '1408Mi'",
            "quantity('2147483648') == quantity('2Gi')",
            "isQuantity('1Gi') && !isQuantity('lots')",
        ];
        for case in cases {
            assert_eq!(eval(&runtime, case, json!({})), Ok(Value::Bool(true)), "{case}");
        }
        assert!(matches!(
            eval(&runtime, "quantity('lots') == quantity('1')", json!({})),
            Err(EvalError::Failed(_))
        ));
    }

    #[test]
    fn regexes_and_strings() {
        let runtime = Runtime::new();
        let object = json!({"spec": {"image": "apache/flink:1.20", "tags": ["a", "b"]}});
        for case in [
            "object.spec.image.matches('^apache/')",
            "object.spec.image.find('[0-9.]+$') == '1.20'",
            "object.spec.image.findAll('[a-z]+') == ['apache', 'flink']",
            "object.spec.tags.join(',') == 'a,b'",
            "'A-b'.lowerAscii() == 'a-b'",
            "object.spec.image.split(':')[1] == '1.20'",
        ] {
            assert_eq!(eval(&runtime, case, object.clone()), Ok(Value::Bool(true)), "{case}");
        }
    }

    #[test]
    fn compile_errors_have_positions() {
        let runtime = Runtime::new();
        let error = runtime.compile("object.spec.x ==").unwrap_err();
        assert_eq!(error.line, 1);
        assert!(error.column > 1, "{error}");
        let error = runtime
            .compile("object.spec.a == 1 &&\n  objet.spec.b == 2")
            .unwrap_err();
        assert_eq!((error.line, error.column), (2, 3), "{error}");
        assert!(error.message.contains("objet"), "{error}");
        let error = runtime.compile("object.spec.items.all(x, y > 1)").unwrap_err();
        assert!(error.message.contains("`y`"), "{error}");
        assert!(
            runtime.compile("object.spec.items.all(x, x > 1)").is_ok(),
            "iteration variables are in scope"
        );
        let error = runtime.compile("frobnicate(object)").unwrap_err();
        assert!(error.message.contains("unknown function `frobnicate`"), "{error}");
    }

    #[test]
    fn a_runaway_comprehension_is_cut_off() {
        let runtime = Runtime::new();
        let object = json!({"items": (0..300).collect::<Vec<_>>()});
        // 300^3 = 27 million iterations: far past the limit, stopped after 1 million.
        let source = "object.items.all(a, object.items.all(b, object.items.all(c, a + b + c >= 0)))";
        let started = Instant::now();
        let result = eval(&runtime, source, object.clone());
        assert!(matches!(result, Err(EvalError::CostExceeded(_))), "{result:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stopped promptly: {:?}",
            started.elapsed()
        );
        // The same shape over a small list is fine, and the meter is reset for the next evaluation.
        assert_eq!(
            eval(&runtime, "object.items.all(a, a >= 0)", object.clone()),
            Ok(Value::Bool(true))
        );
        // map() and filter() keep cel's fast path and are metered too.
        let nested_map = "object.items.map(a, object.items.map(b, object.items.filter(c, c > a + b))).size() > 0";
        assert!(matches!(
            eval(&runtime, nested_map, object.clone()),
            Err(EvalError::CostExceeded(_))
        ));
        assert_eq!(
            eval(
                &runtime,
                "object.items.map(a, a * 2).filter(b, b > 590).size() == 4",
                object
            ),
            Ok(Value::Bool(true))
        );
    }

    #[test]
    fn direct_values_evaluate_like_converted_ones() {
        let runtime = Runtime::new();
        let object = json!({"spec": {"replicas": 2, "cpu": 0.5, "image": "apache/x", "tags": ["a"], "big": u64::MAX}});
        let compiled = runtime
            .compile("object.spec.replicas * 2 == 4 && object.spec.cpu == 0.5 && object.spec.image.startsWith('apache') && object.spec.tags[0] == 'a' && object.spec.big > 0u")
            .unwrap();
        let mut scope = runtime.scope();
        scope.add_variable_as_val("object", to_val(&object));
        assert_eq!(
            runtime.evaluate(&compiled, &scope, CostLimit::default()),
            Ok(Value::Bool(true))
        );
        assert_eq!(referenced_variables(&compiled), ["object"]);
        let uses = runtime
            .compile("tenant != null && {'a': usage.cpu}.a == demand.cpu && images.all(i, i.path != '')")
            .unwrap();
        assert_eq!(referenced_variables(&uses), ["tenant", "usage", "demand", "images"]);
    }

    #[test]
    fn values_round_trip_to_json() {
        let value = json!({"b": [1, "x", true, null, 1.5], "a": {"nested": "yes"}});
        assert_eq!(
            to_json(&to_cel(&value)).unwrap(),
            json!({"a": {"nested": "yes"}, "b": [1, "x", true, null, 1.5]})
        );
    }
}

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

use crate::units::{self, Quantity};
use cel::common::ast::{ComprehensionExpr, Expr};
use cel::extractors::This;
use cel::objects::{Key, Map, Opaque};
use cel::{Context, Env, ExecutionError, IdedExpr, Value};
use regex::Regex;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::{Duration, Instant};

/// The variables every policy expression may use.
pub const VARIABLES: [&str; 13] = [
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

/// Name of the metering function injected into comprehensions.
const METER: &str = "@beamstack_meter";

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

struct Meter {
    remaining: Cell<u64>,
    deadline: Cell<Option<Instant>>,
    exceeded: Cell<Option<&'static str>>,
}

thread_local! {
    static METER_STATE: Meter = const { Meter {
        remaining: Cell::new(u64::MAX),
        deadline: Cell::new(None),
        exceeded: Cell::new(None),
    } };
}

/// Passes a comprehension's loop condition through, counting one iteration.
fn meter(value: Value) -> Result<Value, ExecutionError> {
    METER_STATE.with(|meter| {
        let remaining = meter.remaining.get();
        if remaining == 0 {
            if meter.exceeded.get().is_none() {
                meter.exceeded.set(Some("iterations"));
            }
            return Err(ExecutionError::function_error("cost", "cost limit exceeded"));
        }
        meter.remaining.set(remaining - 1);
        // Reading the clock on every iteration would double the cost of a cheap loop.
        if remaining % 1024 == 0 && meter.deadline.get().is_some_and(|deadline| Instant::now() > deadline) {
            // cel defers errors inside all()/exists() steps; with nothing left, the next loop condition fails too.
            meter.remaining.set(0);
            meter.exceeded.set(Some("time"));
            return Err(ExecutionError::function_error("cost", "time limit exceeded"));
        }
        Ok(value)
    })
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
        add(METER, root.add_function(METER, meter));
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
        for name in STANDARD_FUNCTIONS {
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
        check_references(&root.expr, &mut scope, &self.known_functions).map_err(|(id, message)| {
            let (line, column) = position(if id == 0 { root.id } else { id });
            CompileError { line, column, message }
        })?;
        let mut expression = program.expression().clone();
        let mut next_id = max_id(&expression) + 1;
        meter_comprehensions(&mut expression, &mut next_id);
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
        METER_STATE.with(|meter| {
            meter.remaining.set(limit.iterations);
            meter.deadline.set(Some(Instant::now() + limit.time));
            meter.exceeded.set(None);
        });
        let result = scope.resolve(&compiled.expression);
        let (exceeded, used) =
            METER_STATE.with(|meter| (meter.exceeded.take(), limit.iterations - meter.remaining.get()));
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

/// Standard CEL functions and operators (cel's stdlib and the macros' helpers).
const STANDARD_FUNCTIONS: [&str; 33] = [
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "string",
    "int",
    "uint",
    "double",
    "bool",
    "bytes",
    "type",
    "dyn",
    "has",
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
    "max",
    "min",
    "optional.of",
    "optional.none",
    "optional.ofNonZeroValue",
    "hasValue",
    "value",
    "or",
    "orValue",
    "duration",
    "timestamp",
    "indexOf",
    "lastIndexOf",
    "substring",
    "trim",
];

/// Checks that every identifier is a variable in scope and every function is known. Operators and the macros'
/// internal helpers (names starting with `_` or `@`) are the parser's own.
fn check_references(expr: &Expr, scope: &mut Vec<String>, functions: &HashSet<String>) -> Result<(), (u64, String)> {
    let recurse = |child: &IdedExpr, scope: &mut Vec<String>| -> Result<(), (u64, String)> {
        check_references(&child.expr, scope, functions)
            .map_err(|(id, message)| (if id == 0 { child.id } else { id }, message))
    };
    match expr {
        Expr::Ident(name) => {
            if scope.iter().any(|bound| bound == name) {
                Ok(())
            } else {
                Err((
                    0,
                    format!("undeclared reference to `{name}`: use one of {}", VARIABLES.join(", ")),
                ))
            }
        }
        Expr::Call(call) => {
            let name = call.func_name.as_str();
            if !(name.starts_with('_') || name.starts_with('@') || name == "!_" || functions.contains(name)) {
                // A namespaced name such as `optional.of` parses as a call; unknown ones are reported.
                return Err((0, format!("unknown function `{name}`")));
            }
            if let Some(target) = &call.target {
                recurse(target, scope)?;
            }
            for argument in &call.args {
                recurse(argument, scope)?;
            }
            Ok(())
        }
        Expr::Select(select) => recurse(&select.operand, scope),
        Expr::List(list) => list.elements.iter().try_for_each(|element| recurse(element, scope)),
        Expr::Map(map) => map.entries.iter().try_for_each(|entry| match &entry.expr {
            cel::common::ast::EntryExpr::MapEntry(entry) => {
                recurse(&entry.key, scope)?;
                recurse(&entry.value, scope)
            }
            cel::common::ast::EntryExpr::StructField(field) => recurse(&field.value, scope),
        }),
        Expr::Struct(structure) => structure.entries.iter().try_for_each(|entry| match &entry.expr {
            cel::common::ast::EntryExpr::MapEntry(entry) => {
                recurse(&entry.key, scope)?;
                recurse(&entry.value, scope)
            }
            cel::common::ast::EntryExpr::StructField(field) => recurse(&field.value, scope),
        }),
        Expr::Comprehension(comprehension) => {
            recurse(&comprehension.iter_range, scope)?;
            recurse(&comprehension.accu_init, scope)?;
            let before = scope.len();
            scope.push(comprehension.iter_var.clone());
            if let Some(second) = &comprehension.iter_var2 {
                scope.push(second.clone());
            }
            scope.push(comprehension.accu_var.clone());
            let result = recurse(&comprehension.loop_cond, scope)
                .and_then(|()| recurse(&comprehension.loop_step, scope))
                .and_then(|()| recurse(&comprehension.result, scope));
            scope.truncate(before);
            result
        }
        Expr::Literal(_) | Expr::Unspecified => Ok(()),
        #[allow(unreachable_patterns)]
        _ => Ok(()),
    }
}

fn max_id(expression: &IdedExpr) -> u64 {
    let mut highest = expression.id;
    visit(expression, &mut |node| highest = highest.max(node.id));
    highest
}

fn visit(expression: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
    f(expression);
    for child in children(expression) {
        visit(child, f);
    }
}

/// The direct subexpressions of `expression`, for analyses that walk the tree.
pub fn children(expression: &IdedExpr) -> Vec<&IdedExpr> {
    match &expression.expr {
        Expr::Call(call) => call.target.as_deref().into_iter().chain(&call.args).collect(),
        Expr::Select(select) => vec![&select.operand],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .filter_map(|entry| match &entry.expr {
                cel::common::ast::EntryExpr::MapEntry(entry) => Some([&entry.key, &entry.value]),
                _ => None,
            })
            .flatten()
            .collect(),
        Expr::Struct(structure) => structure
            .entries
            .iter()
            .filter_map(|entry| match &entry.expr {
                cel::common::ast::EntryExpr::StructField(field) => Some(&field.value),
                _ => None,
            })
            .collect(),
        Expr::Comprehension(comprehension) => {
            let ComprehensionExpr {
                iter_range,
                accu_init,
                loop_cond,
                loop_step,
                result,
                ..
            } = comprehension.as_ref();
            vec![iter_range, accu_init, loop_cond, loop_step, result]
        }
        _ => Vec::new(),
    }
}

/// Wraps every comprehension's loop condition in the meter: `@beamstack_meter(<condition>)`.
fn meter_comprehensions(expression: &mut IdedExpr, next_id: &mut u64) {
    match &mut expression.expr {
        Expr::Call(call) => {
            if let Some(target) = &mut call.target {
                meter_comprehensions(target, next_id);
            }
            call.args
                .iter_mut()
                .for_each(|argument| meter_comprehensions(argument, next_id));
        }
        Expr::Select(select) => meter_comprehensions(&mut select.operand, next_id),
        Expr::List(list) => list
            .elements
            .iter_mut()
            .for_each(|element| meter_comprehensions(element, next_id)),
        Expr::Map(map) => {
            for entry in &mut map.entries {
                if let cel::common::ast::EntryExpr::MapEntry(entry) = &mut entry.expr {
                    meter_comprehensions(&mut entry.key, next_id);
                    meter_comprehensions(&mut entry.value, next_id);
                }
            }
        }
        Expr::Comprehension(comprehension) => {
            let comprehension = comprehension.as_mut();
            for child in [
                &mut comprehension.iter_range,
                &mut comprehension.accu_init,
                &mut comprehension.loop_cond,
                &mut comprehension.loop_step,
                &mut comprehension.result,
            ] {
                meter_comprehensions(child, next_id);
            }
            let id = *next_id;
            *next_id += 1;
            // cel runs map() and filter() on a fast path that needs a literal loop condition; there the meter goes
            // on the per-item work (the filter's guard, or the mapped element) so the fast path is kept.
            let target = if matches!(comprehension.loop_cond.expr, Expr::Literal(_)) {
                append_step_work(&mut comprehension.loop_step, &comprehension.accu_var)
            } else {
                None
            };
            let target = match target {
                Some(target) => target,
                None => &mut comprehension.loop_cond,
            };
            let work = std::mem::take(target);
            *target = IdedExpr {
                id,
                expr: Expr::Call(cel::common::ast::CallExpr {
                    func_name: METER.to_owned(),
                    target: None,
                    args: vec![work],
                }),
            };
        }
        _ => {}
    }
}

/// In an appending step (`@result + [item]`, or `guard ? @result + [item] : @result`), the expression evaluated once
/// per element: the guard, else the item.
fn append_step_work<'a>(step: &'a mut IdedExpr, accumulator: &str) -> Option<&'a mut IdedExpr> {
    let Expr::Call(call) = &mut step.expr else { return None };
    match (call.func_name.as_str(), call.args.as_mut_slice()) {
        ("_?_:_", [guard, _, _]) => Some(guard),
        ("_+_", [accumulated, appended]) if matches!(&accumulated.expr, Expr::Ident(name) if name == accumulator) => {
            match &mut appended.expr {
                Expr::List(list) if list.elements.len() == 1 => list.elements.first_mut(),
                _ => None,
            }
        }
        _ => None,
    }
}

// ---- JSON <-> CEL ----

/// A JSON value straight into cel's evaluation representation, in one pass. Going through `Value` costs two more
/// deep copies (`add_variable_from_value` converts and clones the whole tree again); the object is the largest
/// thing a request carries.
pub fn to_val(value: &serde_json::Value) -> Box<dyn cel::common::value::Val> {
    use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt};
    match value {
        serde_json::Value::Null => Box::new(CelNull),
        serde_json::Value::Bool(flag) => Box::new(CelBool::from(*flag)),
        serde_json::Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(int), _) => Box::new(CelInt::from(int)),
            (None, Some(uint)) => Box::new(CelUInt::from(uint)),
            _ => Box::new(CelDouble::from(number.as_f64().unwrap_or(f64::NAN))),
        },
        serde_json::Value::String(text) => Box::new(CelString::from(text.clone())),
        serde_json::Value::Array(items) => Box::new(CelList::from(items.iter().map(to_val).collect::<Vec<_>>())),
        serde_json::Value::Object(map) => Box::new(CelMap::from(
            map.iter()
                .map(|(key, value)| (CelMapKey::String(CelString::from(key.clone())), to_val(value)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}

/// The request-level variables an expression refers to (`object`, `tenant`, ...).
pub fn referenced_variables(compiled: &Compiled) -> Vec<&'static str> {
    let mut found = Vec::new();
    visit(&compiled.expression, &mut |node| {
        if let Expr::Ident(name) = &node.expr
            && let Some(variable) = VARIABLES.iter().find(|variable| **variable == name.as_str())
            && !found.contains(variable)
        {
            found.push(*variable);
        }
    });
    found
}

/// A JSON value as CEL sees it; integers are `int` (or `uint` past i64), as Kubernetes converts them.
pub fn to_cel(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(flag) => Value::Bool(*flag),
        serde_json::Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(int), _) => Value::Int(int),
            (None, Some(uint)) => Value::UInt(uint),
            _ => Value::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(text) => Value::String(Arc::new(text.clone())),
        serde_json::Value::Array(items) => Value::List(Arc::new(items.iter().map(to_cel).collect())),
        serde_json::Value::Object(map) => Value::Map(Map {
            map: Arc::new(
                map.iter()
                    .map(|(key, value)| (Key::String(Arc::new(key.clone())), to_cel(value)))
                    .collect(),
            ),
        }),
    }
}

/// A CEL value as JSON, for mutations. Quantities become their string form.
pub fn to_json(value: &Value) -> Result<serde_json::Value, String> {
    Ok(match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(flag) => serde_json::Value::Bool(*flag),
        Value::Int(int) => serde_json::Value::from(*int),
        Value::UInt(uint) => serde_json::Value::from(*uint),
        Value::Float(float) => serde_json::Number::from_f64(*float)
            .map(serde_json::Value::Number)
            .ok_or("NaN and infinities have no JSON form")?,
        Value::String(text) => serde_json::Value::String(text.as_ref().clone()),
        Value::List(items) => serde_json::Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Map(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map
                .map
                .iter()
                .map(|(key, value)| {
                    let key = match key {
                        Key::String(text) => text.as_ref().clone(),
                        Key::Int(int) => int.to_string(),
                        Key::Uint(uint) => uint.to_string(),
                        Key::Bool(flag) => flag.to_string(),
                    };
                    Ok((key, to_json(value)?))
                })
                .collect::<Result<_, String>>()?;
            // CEL maps are unordered; sorting keeps mutations deterministic (and so idempotent).
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().collect())
        }
        Value::Opaque(opaque) => match opaque.downcast_ref::<CelQuantity>() {
            Some(quantity) => serde_json::Value::String(quantity.0.to_string()),
            None => return Err(format!("a {} has no JSON form", opaque.runtime_type_name())),
        },
        other => return Err(format!("{:?} has no JSON form", other.type_of())),
    })
}

// ---- regexes, cached ----

static REGEXES: LazyLock<RwLock<HashMap<String, Arc<Regex>>>> = LazyLock::new(Default::default);
const REGEX_CACHE_LIMIT: usize = 1024;

fn regex(pattern: &str) -> Result<Arc<Regex>, ExecutionError> {
    if let Some(compiled) = REGEXES.read().unwrap_or_else(|e| e.into_inner()).get(pattern) {
        return Ok(Arc::clone(compiled));
    }
    let compiled = Arc::new(
        Regex::new(pattern)
            .map_err(|error| ExecutionError::function_error("matches", format!("bad regex: {error}")))?,
    );
    let mut cache = REGEXES.write().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= REGEX_CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(pattern.to_owned(), Arc::clone(&compiled));
    Ok(compiled)
}

fn matches(This(text): This<Arc<String>>, pattern: Arc<String>) -> Result<bool, ExecutionError> {
    Ok(regex(&pattern)?.is_match(&text))
}

fn find(This(text): This<Arc<String>>, pattern: Arc<String>) -> Result<Value, ExecutionError> {
    Ok(Value::from(
        regex(&pattern)?.find(&text).map_or("", |found| found.as_str()),
    ))
}

fn find_all(This(text): This<Arc<String>>, pattern: Arc<String>) -> Result<Value, ExecutionError> {
    let found: Vec<Value> = regex(&pattern)?
        .find_iter(&text)
        .map(|m| Value::from(m.as_str()))
        .collect();
    Ok(Value::List(Arc::new(found)))
}

/// `normalizeImage('flink:1.20') == 'docker.io/library/flink:1.20'`: Docker's implicit registry spelled out.
fn normalize_image(image: Arc<String>) -> Value {
    Value::from(crate::validate::normalize_image(&image))
}

fn lower_ascii(This(text): This<Arc<String>>) -> Value {
    Value::from(text.to_ascii_lowercase())
}

fn upper_ascii(This(text): This<Arc<String>>) -> Value {
    Value::from(text.to_ascii_uppercase())
}

fn join(This(items): This<Arc<Vec<Value>>>, separator: Arc<String>) -> Result<Value, ExecutionError> {
    let parts: Result<Vec<&str>, _> = items
        .iter()
        .map(|item| match item {
            Value::String(text) => Ok(text.as_str()),
            other => Err(ExecutionError::function_error(
                "join",
                format!("{:?} is not a string", other.type_of()),
            )),
        })
        .collect();
    Ok(Value::from(parts?.join(separator.as_str())))
}

fn split(This(text): This<Arc<String>>, separator: Arc<String>) -> Value {
    Value::List(Arc::new(text.split(separator.as_str()).map(Value::from).collect()))
}

// ---- quantities ----

/// A Kubernetes quantity inside CEL: exact, compared by amount, printed canonically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CelQuantity(pub Quantity);

impl Opaque for CelQuantity {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.Quantity"
    }
}

fn quantity_error(function: &str, message: impl ToString) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

fn parse_quantity(function: &str, value: &Value) -> Result<Quantity, ExecutionError> {
    match value {
        Value::String(text) => Quantity::parse(text).map_err(|error| quantity_error(function, error)),
        Value::Int(int) => Ok(Quantity::from_decimal(rust_decimal::Decimal::from(*int))),
        Value::UInt(uint) => Ok(Quantity::from_decimal(rust_decimal::Decimal::from(*uint))),
        Value::Opaque(opaque) => opaque
            .downcast_ref::<CelQuantity>()
            .map(|quantity| quantity.0)
            .ok_or_else(|| quantity_error(function, "expected a quantity")),
        other => Err(quantity_error(
            function,
            format!("expected a quantity, got {:?}", other.type_of()),
        )),
    }
}

fn quantity_value(quantity: Quantity) -> Value {
    Value::Opaque(Arc::new(CelQuantity(quantity)))
}

fn overflow(function: &str) -> ExecutionError {
    quantity_error(function, "the result is out of range")
}

fn quantity(value: Value) -> Result<Value, ExecutionError> {
    parse_quantity("quantity", &value).map(quantity_value)
}

fn is_quantity(value: Value) -> bool {
    parse_quantity("isQuantity", &value).is_ok()
}

fn quantity_add(This(this): This<Value>, other: Value) -> Result<Value, ExecutionError> {
    let sum = parse_quantity("add", &this)?.checked_add(parse_quantity("add", &other)?);
    sum.map(quantity_value).ok_or_else(|| overflow("add"))
}

fn quantity_sub(This(this): This<Value>, other: Value) -> Result<Value, ExecutionError> {
    let difference = parse_quantity("sub", &this)?.checked_sub(parse_quantity("sub", &other)?);
    difference.map(quantity_value).ok_or_else(|| overflow("sub"))
}

fn factor(function: &str, value: &Value) -> Result<rust_decimal::Decimal, ExecutionError> {
    use rust_decimal::prelude::FromPrimitive;
    match value {
        Value::Int(int) => Ok(rust_decimal::Decimal::from(*int)),
        Value::UInt(uint) => Ok(rust_decimal::Decimal::from(*uint)),
        Value::Float(float) => rust_decimal::Decimal::from_f64(*float)
            .ok_or_else(|| quantity_error(function, format!("{float} cannot scale a quantity"))),
        other => Err(quantity_error(
            function,
            format!("expected a number, got {:?}", other.type_of()),
        )),
    }
}

/// `quantity('2Gi').mul(3)`: Kubernetes CEL has no multiplication of quantities (kubernetes#135994).
fn quantity_mul(This(this): This<Value>, by: Value) -> Result<Value, ExecutionError> {
    let product = parse_quantity("mul", &this)?.checked_mul(factor("mul", &by)?);
    product.map(quantity_value).ok_or_else(|| overflow("mul"))
}

fn quantity_div(This(this): This<Value>, by: Value) -> Result<Value, ExecutionError> {
    let divisor = factor("div", &by)?;
    if divisor.is_zero() {
        return Err(quantity_error("div", "division by zero"));
    }
    let quotient = parse_quantity("div", &this)?.checked_div(divisor);
    quotient.map(quantity_value).ok_or_else(|| overflow("div"))
}

fn quantity_compare(function: &str, this: &Value, other: &Value) -> Result<std::cmp::Ordering, ExecutionError> {
    Ok(parse_quantity(function, this)?.cmp(&parse_quantity(function, other)?))
}

fn quantity_is_less_than(This(this): This<Value>, other: Value) -> Result<bool, ExecutionError> {
    Ok(quantity_compare("isLessThan", &this, &other)?.is_lt())
}

fn quantity_is_greater_than(This(this): This<Value>, other: Value) -> Result<bool, ExecutionError> {
    Ok(quantity_compare("isGreaterThan", &this, &other)?.is_gt())
}

fn quantity_compare_to(This(this): This<Value>, other: Value) -> Result<i64, ExecutionError> {
    Ok(quantity_compare("compareTo", &this, &other)? as i64)
}

fn quantity_as_integer(This(this): This<Value>) -> Result<i64, ExecutionError> {
    use rust_decimal::prelude::ToPrimitive;
    let value = parse_quantity("asInteger", &this)?.value();
    value
        .is_integer()
        .then(|| value.to_i64())
        .flatten()
        .ok_or_else(|| quantity_error("asInteger", "the quantity is not an integer that fits in int64"))
}

fn quantity_as_float(This(this): This<Value>) -> Result<f64, ExecutionError> {
    use rust_decimal::prelude::ToPrimitive;
    parse_quantity("asApproximateFloat", &this)?
        .value()
        .to_f64()
        .ok_or_else(|| overflow("asApproximateFloat"))
}

fn quantity_as_string(This(this): This<Value>) -> Result<Value, ExecutionError> {
    Ok(Value::from(parse_quantity("asString", &this)?.to_string()))
}

/// `sumQuantities(list)`: the sum of a list of quantities (strings or quantities).
fn sum_quantities(items: Arc<Vec<Value>>) -> Result<Value, ExecutionError> {
    let mut total = Quantity::from_decimal(rust_decimal::Decimal::ZERO);
    for item in items.iter() {
        total = total
            .checked_add(parse_quantity("sumQuantities", item)?)
            .ok_or_else(|| overflow("sumQuantities"))?;
    }
    Ok(quantity_value(total))
}

/// `flinkMemory('2048m')`: a Flink memory size as a quantity of bytes (`2048m` is 2048 MiB to Flink).
fn flink_memory(text: Arc<String>) -> Result<Value, ExecutionError> {
    let bytes = units::flink_memory(&text).map_err(|error| quantity_error("flinkMemory", error))?;
    Ok(quantity_value(Quantity::bytes(bytes)))
}

/// `sparkMemory('1g')`: a Spark memory string as a quantity of bytes.
fn spark_memory(text: Arc<String>) -> Result<Value, ExecutionError> {
    let bytes = units::spark_memory(&text).map_err(|error| quantity_error("sparkMemory", error))?;
    Ok(quantity_value(Quantity::bytes(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

//! The CEL benchmark, against cel-go: the webhook's CEL evaluator on the same expressions over the same object as
//! `bench/cel-go` (cel-go in Kubernetes' own CEL environment). Evaluation only: every expression is compiled once
//! (`Runtime::compile`, as policies are), the variables are converted to CEL values once and bound in one scope as
//! the engine binds them, and the timed loop calls `Runtime::evaluate` with the default cost limit, as the engine
//! does per expression.
//!
//! ```sh
//! bench-cel --emit-input cel-input.json   # the shared input: the shipped policies' expressions, a few classic
//!                                         # ones, the object and every variable they read
//! bench-cel --input cel-input.json        # one JSON line per expression: per-evaluation ns
//! ```

use beamstack::kinds::RunnerKind;
use beamstack::policy::demand::{Demand, demand_of};
use beamstack::policy::runtime::{CelQuantity, Compiled, CostLimit, Runtime, to_cel, to_json, to_val};
use beamstack::policy::usage::usage_from_json;
use beamstack::units::Quantity;
use cel::Value;
use cel::objects::{Key, Map};
use clap::Parser;
use serde_json::{Value as Json, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The allocator beam-webhook uses (webhook/src/main.rs), so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "bench-cel", about = "Per-evaluation time of the webhook's CEL expressions")]
struct Args {
    /// Write the shared input (expressions, object, variables) to this file and exit.
    #[arg(long)]
    emit_input: Option<PathBuf>,
    /// The shared input to measure.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Minimum time of one repetition of one expression, seconds.
    #[arg(long, default_value_t = 0.2)]
    window: f64,
    /// Repetitions per expression; the line reports their median.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Only the expressions with these indexes, `START:END` (END exclusive).
    #[arg(long)]
    select: Option<String>,
    /// Evaluate each expression exactly this many times, untimed, and print nothing (for profilers).
    #[arg(long)]
    iterations: Option<u64>,
    /// `engine`: bind variables as the engine does (JSON-shaped ones with `to_val`); `value`: every variable as an
    /// Arc-shared `Value` (`to_cel`), for comparison.
    #[arg(long, default_value = "engine")]
    bind: String,
}

/// Variables the engine binds with `add_variable_as_val(to_val(..))`: JSON straight into cel's representation. The
/// others (`kind`, `tenant`, `usage`, `demand`, `variables`) it builds as `Value`s, with quantities as opaque values.
const AS_VAL: [&str; 8] = [
    "object",
    "oldObject",
    "runnerSpec",
    "containers",
    "images",
    "volumes",
    "request",
    "namespaceObject",
];

/// A quantity in the shared input: `{"@quantity": "2Gi"}` (cel-go builds Kubernetes' Quantity from it).
const QUANTITY_TAG: &str = "@quantity";

fn main() {
    let args = Args::parse();
    if let Some(path) = &args.emit_input {
        let input = emit_input();
        std::fs::write(path, serde_json::to_vec_pretty(&input).expect("JSON")).expect("write the input");
        eprintln!(
            "bench-cel: wrote {} ({} expressions, {} left out)",
            path.display(),
            input["expressions"].as_array().map_or(0, Vec::len),
            input["excluded"].as_array().map_or(0, Vec::len)
        );
        return;
    }
    let Some(path) = &args.input else {
        eprintln!("bench-cel: give --input FILE or --emit-input FILE");
        std::process::exit(2);
    };
    let input: Json = serde_json::from_slice(&std::fs::read(path).expect("read the input")).expect("input JSON");
    run(&input, &args);
}

fn run(input: &Json, args: &Args) {
    let runtime = Runtime::new();
    let mut scope = runtime.scope();
    bind(&mut scope, &input["variables"], args.bind == "value");
    let expressions = input["expressions"].as_array().expect("expressions");
    let (start, end) = select(args.select.as_deref(), expressions.len());
    let window = Duration::from_secs_f64(args.window);
    for (index, entry) in expressions.iter().enumerate().take(end).skip(start) {
        let name = entry["name"].as_str().expect("name");
        let source = entry["expression"].as_str().expect("expression");
        let mut line = json!({"kind": "cel", "impl": "rust", "index": index, "name": name});
        let compiled = match runtime.compile(source) {
            Ok(compiled) => compiled,
            Err(error) => {
                line["error"] = json!(format!("compile: {error}"));
                println!("{line}");
                continue;
            }
        };
        match runtime.evaluate(&compiled, &scope, CostLimit::default()) {
            Ok(value) => line["result"] = to_json(&value).unwrap_or_else(|error| json!(format!("<{error}>"))),
            Err(error) => {
                line["error"] = json!(format!("evaluate: {error}"));
                println!("{line}");
                continue;
            }
        }
        let evaluate = || {
            std::hint::black_box(runtime.evaluate(&compiled, &scope, CostLimit::default())).ok();
        };
        if let Some(iterations) = args.iterations {
            (0..iterations).for_each(|_| evaluate());
            continue;
        }
        let (iterations, reps) = measure(evaluate, window, args.repeats);
        line["iterations"] = json!(iterations);
        line["reps_ns"] = json!(reps);
        line["ns"] = json!(median(&reps));
        println!("{line}");
    }
}

fn select(range: Option<&str>, len: usize) -> (usize, usize) {
    let Some(range) = range else { return (0, len) };
    let (start, end) = range.split_once(':').expect("--select START:END");
    let start = start.parse().unwrap_or(0);
    let end = end.parse().unwrap_or(len);
    (start.min(len), end.min(len))
}

/// Calibrates a batch size that takes at least `window`, then times `repeats` batches: ns per call in each.
fn measure(mut f: impl FnMut(), window: Duration, repeats: usize) -> (u64, Vec<f64>) {
    let time = |f: &mut dyn FnMut(), n: u64| {
        let started = Instant::now();
        for _ in 0..n {
            f();
        }
        started.elapsed()
    };
    let mut n = 1u64;
    loop {
        let took = time(&mut f, n);
        if took >= window / 10 {
            n = ((n as f64) * window.as_secs_f64() / took.as_secs_f64()).ceil() as u64;
            break;
        }
        n *= if took < window / 1000 { 10 } else { 2 };
    }
    let reps = (0..repeats.max(1))
        .map(|_| time(&mut f, n).as_nanos() as f64 / n as f64)
        .collect();
    (n, reps)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

/// Binds the shared input's variables as the engine's `request_scope` binds them.
fn bind(scope: &mut cel::Context<'_, 'static>, variables: &Json, all_values: bool) {
    for (name, value) in variables.as_object().expect("variables") {
        if AS_VAL.contains(&name.as_str()) && !all_values {
            scope.add_variable_as_val(name.clone(), to_val(value));
        } else {
            scope.add_variable_from_value(name.clone(), to_value(value));
        }
    }
}

/// Like `to_cel`, with `{"@quantity": ..}` as the engine's quantity values.
fn to_value(value: &Json) -> Value {
    match value {
        Json::Object(map) if map.len() == 1 && map.contains_key(QUANTITY_TAG) => {
            let text = map[QUANTITY_TAG].as_str().expect("quantity string");
            Value::Opaque(Arc::new(CelQuantity(Quantity::parse(text).expect("quantity"))))
        }
        Json::Object(map) => Value::Map(Map {
            map: Arc::new(
                map.iter()
                    .map(|(key, value)| (Key::String(Arc::new(key.clone())), to_value(value)))
                    .collect(),
            ),
        }),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(to_value).collect())),
        other => to_cel(other),
    }
}

fn quantity(quantity: Quantity) -> Json {
    json!({QUANTITY_TAG: quantity.to_string()})
}

/// `demand` and `usage` as the engine builds them (`demand_value` in webhook/src/policy/engine.rs).
fn demand_json(demand: Demand) -> Json {
    json!({
        "cpu": quantity(Quantity::millicores(demand.cpu)),
        "memory": quantity(Quantity::bytes(demand.memory)),
        "cpuMillis": demand.cpu.0 as i64,
        "memoryBytes": demand.memory.0 as i64,
        "workers": demand.workers as i64,
        "jobs": demand.jobs as i64,
    })
}

/// `tenant` as the engine builds it (`tenant_value` in webhook/src/policy/engine.rs) for bench's tenant.
fn tenant_json() -> Json {
    let tenant: Json = serde_saphyr::from_str(bench::TENANT).expect("tenant YAML");
    let spec = &tenant["spec"];
    let budget = &spec["budget"];
    let per_job = &budget["perJob"];
    let optional_quantity = |value: &Json| match value {
        Json::String(text) => quantity(Quantity::parse(text).expect("quantity")),
        _ => Json::Null,
    };
    let strings = |value: &Json| value.as_array().cloned().map_or(json!([]), Json::Array);
    let defaults = &spec["defaults"];
    json!({
        "name": tenant["metadata"]["name"],
        "namespaces": strings(&spec["namespaces"]),
        "budget": {
            "cpu": optional_quantity(&budget["cpu"]),
            "memory": optional_quantity(&budget["memory"]),
            "jobs": budget["jobs"],
            "workers": budget["workers"],
            "perJob": {
                "cpu": optional_quantity(&per_job["cpu"]),
                "memory": optional_quantity(&per_job["memory"]),
                "workers": per_job["workers"],
            },
        },
        "defaults": {
            "tolerations": strings(&defaults["tolerations"]),
            "nodeSelector": defaults.get("nodeSelector").cloned().unwrap_or(json!({})),
            "priorityClassName": defaults["priorityClassName"],
            "volcanoQueue": defaults["volcanoQueue"],
        },
        "allowances": {
            "registries": strings(&spec["allowances"]["registries"]),
            "flinkVersions": strings(&spec["allowances"]["flinkVersions"]),
            "serviceAccounts": strings(&spec["allowances"]["serviceAccounts"]),
        },
    })
}

/// A few expressions of the kind every CEL benchmark has, over the same object.
const CLASSIC: [(&str, &str); 9] = [
    ("classic: field access", "object.metadata.name"),
    (
        "classic: nested field comparison",
        "object.spec.taskManager.replicas >= 2",
    ),
    (
        "classic: two fields and a conjunction",
        "object.metadata.namespace == 'team-a' && object.spec.flinkVersion == 'v1_20'",
    ),
    (
        "classic: all() over containers",
        "object.spec.podTemplate.spec.containers.all(c, has(c.name) && size(c.name) > 0)",
    ),
    (
        "classic: exists() over containers",
        "containers.exists(c, c.container.name == 'flink-main-container')",
    ),
    ("classic: startsWith", "object.spec.image.startsWith('apache/')"),
    (
        "classic: matches",
        "object.spec.image.matches('^[a-z0-9./-]+:[0-9]+[.][0-9]+$')",
    ),
    ("classic: size() of a map", "size(object.spec.flinkConfiguration) >= 2"),
    (
        "classic: map() and filter() over images",
        "images.map(i, i.image).filter(i, i.startsWith('apache/')).size() > 0",
    ),
];

/// The shared input: the validated FlinkDeployment (what /validate gets after /mutate), every variable the
/// engine would bind for it, and the expressions.
fn emit_input() -> Json {
    let admission = bench::admission(bench::shipped_policies().len());
    let review = bench::validate_review(&admission);
    let object = review["request"]["object"].clone();
    let kind = RunnerKind::of_object(&object).expect("a runner object");
    let listed = |entries: Vec<(String, Json)>, key: &str| {
        Json::Array(
            entries
                .into_iter()
                .map(|(path, value)| json!({"path": path, key: value}))
                .collect(),
        )
    };
    let containers = kind
        .containers_of(&object)
        .into_iter()
        .map(|(path, container)| (path, container.clone()))
        .collect();
    let images = kind
        .images_of(&object)
        .into_iter()
        .map(|(path, image)| (path, Json::String(image)))
        .collect();
    let volumes = kind
        .volumes_of(&object)
        .into_iter()
        .map(|(path, volume)| (path, volume.clone()))
        .collect();
    let usage = usage_from_json(&json!({"cpu": "8", "memory": "20Gi", "jobs": 2, "workers": 4})).expect("usage");
    let mut variables = json!({
        "object": object,
        "runnerSpec": beamstack::tree::get(&object, kind.spec_path()).cloned().unwrap_or(Json::Null),
        "kind": kind.kind(),
        "containers": listed(containers, "container"),
        "images": listed(images, "image"),
        "volumes": listed(volumes, "volume"),
        "tenant": tenant_json(),
        "usage": demand_json(usage),
        "demand": demand_json(demand_of(kind, &object)),
        "variables": {},
    });

    // Every expression of the shipped policies, in file order, each source once.
    let mut found: Vec<(String, String)> = Vec::new();
    let mut policy_variables: Vec<(String, String)> = Vec::new();
    for document in bench::shipped_policies() {
        let policy = document.value["metadata"]["name"].as_str().unwrap_or("?").to_owned();
        let spec = &document.value["spec"];
        let list = |key: &str| spec[key].as_array().cloned().unwrap_or_default();
        let mut add = |field: String, source: Option<&str>| {
            if let Some(source) = source
                && !found.iter().any(|(_, existing)| existing == source)
            {
                found.push((format!("{policy}: {field}"), source.to_owned()));
            }
        };
        for (index, condition) in list("matchConditions").iter().enumerate() {
            add(format!("matchConditions[{index}]"), condition["expression"].as_str());
        }
        for (index, variable) in list("variables").iter().enumerate() {
            let name = variable["name"].as_str().expect("variable name").to_owned();
            let source = variable["expression"].as_str().expect("variable expression");
            policy_variables.push((name.clone(), source.to_owned()));
            add(format!("variables[{index}] ({name})"), Some(source));
        }
        for (index, validation) in list("validations").iter().enumerate() {
            add(format!("validations[{index}]"), validation["expression"].as_str());
            add(
                format!("validations[{index}].messageExpression"),
                validation["messageExpression"].as_str(),
            );
        }
        for (index, mutation) in list("mutations").iter().enumerate() {
            add(format!("mutations[{index}]"), mutation["expression"].as_str());
        }
    }

    // The policies' `variables`, evaluated in order for this object as the engine would; one map (the names differ
    // between policies), so each validation reads what its policy computed.
    let runtime = Runtime::new();
    for (name, source) in &policy_variables {
        let mut scope = runtime.scope();
        bind(&mut scope, &variables, false);
        let compiled = runtime.compile(source).expect("policy variable compiles");
        let value = runtime
            .evaluate(&compiled, &scope, CostLimit::default())
            .unwrap_or_else(|error| panic!("variable {name}: {error}"));
        let entries = variables["variables"].as_object_mut().expect("map");
        assert!(!entries.contains_key(name), "variable {name} in two policies");
        entries.insert(name.clone(), to_json(&value).expect("variable as JSON"));
    }

    // Only what evaluates for this object: a rule for Spark fields fails with no such key on a FlinkDeployment
    // (the engine never runs it, its match says SparkApplication).
    let mut scope = runtime.scope();
    bind(&mut scope, &variables, false);
    let mut expressions = Vec::new();
    let mut excluded = Vec::new();
    let classic = CLASSIC
        .iter()
        .map(|(name, source)| ((*name).to_owned(), (*source).to_owned()));
    for (name, source) in found.into_iter().chain(classic) {
        let compiled: Compiled = runtime.compile(&source).expect("shipped expressions compile");
        match runtime.evaluate(&compiled, &scope, CostLimit::default()) {
            Ok(_) => expressions.push(json!({"name": name, "expression": source})),
            Err(error) => excluded.push(json!({"name": name, "expression": source, "reason": error.to_string()})),
        }
    }
    json!({
        "about": "Shared input of the CEL benchmark (bench-cel --emit-input): the shipped RunnerPolicies' CEL expressions \
                  and a few classic ones over the benchmark's FlinkDeployment (testdata/fixtures/reviews/\
                  flink-pipeline-create.json after /mutate) with the variables the engine binds for it. \
                  {\"@quantity\": s} is a Kubernetes quantity.",
        "variables": variables,
        "expressions": expressions,
        "excluded": excluded,
    })
}

//! Kubernetes quantities in CEL (`quantity('1.5Gi').isGreaterThan(...)`), and Flink's and Spark's memory notations
//! read as quantities of bytes.

use crate::units::{self, Quantity};
use cel::extractors::This;
use cel::objects::Opaque;
use cel::{ExecutionError, Value};
use std::sync::Arc;

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

pub(super) fn quantity(value: Value) -> Result<Value, ExecutionError> {
    parse_quantity("quantity", &value).map(quantity_value)
}

pub(super) fn is_quantity(value: Value) -> bool {
    parse_quantity("isQuantity", &value).is_ok()
}

pub(super) fn quantity_add(This(this): This<Value>, other: Value) -> Result<Value, ExecutionError> {
    let sum = parse_quantity("add", &this)?.checked_add(parse_quantity("add", &other)?);
    sum.map(quantity_value).ok_or_else(|| overflow("add"))
}

pub(super) fn quantity_sub(This(this): This<Value>, other: Value) -> Result<Value, ExecutionError> {
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
pub(super) fn quantity_mul(This(this): This<Value>, by: Value) -> Result<Value, ExecutionError> {
    let product = parse_quantity("mul", &this)?.checked_mul(factor("mul", &by)?);
    product.map(quantity_value).ok_or_else(|| overflow("mul"))
}

pub(super) fn quantity_div(This(this): This<Value>, by: Value) -> Result<Value, ExecutionError> {
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

pub(super) fn quantity_is_less_than(This(this): This<Value>, other: Value) -> Result<bool, ExecutionError> {
    Ok(quantity_compare("isLessThan", &this, &other)?.is_lt())
}

pub(super) fn quantity_is_greater_than(This(this): This<Value>, other: Value) -> Result<bool, ExecutionError> {
    Ok(quantity_compare("isGreaterThan", &this, &other)?.is_gt())
}

pub(super) fn quantity_compare_to(This(this): This<Value>, other: Value) -> Result<i64, ExecutionError> {
    Ok(quantity_compare("compareTo", &this, &other)? as i64)
}

pub(super) fn quantity_as_integer(This(this): This<Value>) -> Result<i64, ExecutionError> {
    use rust_decimal::prelude::ToPrimitive;
    let value = parse_quantity("asInteger", &this)?.value();
    value
        .is_integer()
        .then(|| value.to_i64())
        .flatten()
        .ok_or_else(|| quantity_error("asInteger", "the quantity is not an integer that fits in int64"))
}

pub(super) fn quantity_as_float(This(this): This<Value>) -> Result<f64, ExecutionError> {
    use rust_decimal::prelude::ToPrimitive;
    parse_quantity("asApproximateFloat", &this)?
        .value()
        .to_f64()
        .ok_or_else(|| overflow("asApproximateFloat"))
}

pub(super) fn quantity_as_string(This(this): This<Value>) -> Result<Value, ExecutionError> {
    Ok(Value::from(parse_quantity("asString", &this)?.to_string()))
}

/// `sumQuantities(list)`: the sum of a list of quantities (strings or quantities).
pub(super) fn sum_quantities(items: Arc<Vec<Value>>) -> Result<Value, ExecutionError> {
    let mut total = Quantity::from_decimal(rust_decimal::Decimal::ZERO);
    for item in items.iter() {
        total = total
            .checked_add(parse_quantity("sumQuantities", item)?)
            .ok_or_else(|| overflow("sumQuantities"))?;
    }
    Ok(quantity_value(total))
}

/// `flinkMemory('2048m')`: a Flink memory size as a quantity of bytes (`2048m` is 2048 MiB to Flink).
pub(super) fn flink_memory(text: Arc<String>) -> Result<Value, ExecutionError> {
    let bytes = units::flink_memory(&text).map_err(|error| quantity_error("flinkMemory", error))?;
    Ok(quantity_value(Quantity::bytes(bytes)))
}

/// `sparkMemory('1g')`: a Spark memory string as a quantity of bytes.
pub(super) fn spark_memory(text: Arc<String>) -> Result<Value, ExecutionError> {
    let bytes = units::spark_memory(&text).map_err(|error| quantity_error("sparkMemory", error))?;
    Ok(quantity_value(Quantity::bytes(bytes)))
}

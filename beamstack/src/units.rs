//! Memory and cpu amounts as the runners read them.
//!
//! Three notations meet in a runner CR and each must be read the way its consumer reads it:
//! - Flink's `MemorySize` (`jobManager.resource.memory`): `2048m` is 2048 *mebibytes*; every unit is a power of
//!   1024. The operator falls back to a Kubernetes quantity when MemorySize cannot parse the string
//!   (FlinkConfigBuilder.parseResourceMemoryString), so `2Gi` works too.
//! - Spark's JVM memory strings (`driver.memory`): `512m`, `1g`; a bare number is mebibytes (Spark's default unit
//!   for `spark.{driver,executor}.memory`).
//! - Kubernetes quantities (container resources, budgets): `2048m` is 2.048 *bytes* (milli), `2Gi` is 2 GiB.
//!
//! Everything is normalised to whole bytes and millicores here, and every module that sums resources goes through
//! this one, so `2048m` can never mean two different things in two places.

use regex::Regex;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::fmt;
use std::sync::LazyLock;

const KIB: u64 = 1024;
const MIB: u64 = KIB * 1024;

/// Why a memory or cpu string could not be read. The message says which notation was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("`{0}` is not a Flink memory size: use a number with a unit such as `2048m`, `2g` or `2Gi`")]
    FlinkMemory(String),
    #[error("`{0}` is not a Spark memory string: use a number with a unit such as `512m` or `2g`")]
    SparkMemory(String),
    #[error("`{0}` is not a Kubernetes quantity: use a value such as `500m`, `2`, `1Gi` or `512Mi`")]
    Quantity(String),
    #[error("`{0}` is too large")]
    Overflow(String),
}

/// An amount of memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Bytes(pub u64);

/// An amount of cpu in thousandths of a core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Millicores(pub u64);

impl fmt::Display for Bytes {
    /// The shortest exact binary-suffixed Kubernetes quantity, so messages read `2Gi`, not `2147483648`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 5] = [
            ("Pi", 1 << 50),
            ("Ti", 1 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ];
        for (suffix, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{suffix}", self.0 / size);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Millicores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

/// Splits `"  2048 mb "` into `(2048, "mb")`; the number part is digits only (no sign, no exponent), as both
/// Flink's MemorySize and the JVM accept.
fn split_integer_and_unit(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    if digits_end == 0 {
        return None;
    }
    let number = text[..digits_end].parse().ok()?;
    Some((number, text[digits_end..].trim()))
}

/// Reads a Flink memory size the way the Flink operator does: MemorySize first, a Kubernetes quantity second.
pub fn flink_memory(text: &str) -> Result<Bytes, UnitError> {
    if let Some((number, unit)) = split_integer_and_unit(text) {
        let multiplier = match unit.to_ascii_lowercase().as_str() {
            "" | "b" | "bytes" => Some(1),
            "k" | "kb" | "kibibytes" => Some(KIB),
            "m" | "mb" | "mebibytes" => Some(MIB),
            "g" | "gb" | "gibibytes" => Some(MIB * KIB),
            "t" | "tb" | "tebibytes" => Some(MIB * MIB),
            _ => None,
        };
        if let Some(multiplier) = multiplier {
            return number
                .checked_mul(multiplier)
                .map(Bytes)
                .ok_or_else(|| UnitError::Overflow(text.to_owned()));
        }
    }
    quantity_bytes(text).map_err(|error| match error {
        UnitError::Overflow(_) => error,
        _ => UnitError::FlinkMemory(text.to_owned()),
    })
}

/// Reads a Spark (JVM-style) memory string: `k`, `m`, `g`, `t`, `p`, optionally followed by `b`, case-insensitive;
/// a bare number is mebibytes.
pub fn spark_memory(text: &str) -> Result<Bytes, UnitError> {
    let (number, unit) = split_integer_and_unit(text).ok_or_else(|| UnitError::SparkMemory(text.to_owned()))?;
    let multiplier = match unit.to_ascii_lowercase().as_str() {
        "" | "m" | "mb" => MIB,
        "k" | "kb" => KIB,
        "g" | "gb" => MIB * KIB,
        "t" | "tb" => MIB * MIB,
        "p" | "pb" => MIB * MIB * KIB,
        _ => return Err(UnitError::SparkMemory(text.to_owned())),
    };
    number
        .checked_mul(multiplier)
        .map(Bytes)
        .ok_or_else(|| UnitError::Overflow(text.to_owned()))
}

/// An exact Kubernetes quantity: a decimal amount of base units (bytes, cores), compared and summed by value.
///
/// Our own rather than kube_quantity's: kube_quantity 0.9 compares `2147483648` and `2Gi` as different amounts
/// (its format normalisation is off), and budgets add quantities written both ways.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    value: Decimal,
    /// Written with a binary suffix (Ki, Mi, ...): printed back that way when exact.
    binary: bool,
}

static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei)|(n|u|m|k|M|G|T|P|E)|[eE]([+-]?\d{1,3}))?$")
        .unwrap()
});

impl Quantity {
    pub fn from_decimal(value: Decimal) -> Self {
        Self { value, binary: false }
    }

    pub fn bytes(bytes: Bytes) -> Self {
        Self {
            value: Decimal::from(bytes.0),
            binary: true,
        }
    }

    pub fn millicores(millicores: Millicores) -> Self {
        Self {
            value: Decimal::from(millicores.0) / Decimal::from(1000),
            binary: false,
        }
    }

    pub fn parse(text: &str) -> Result<Self, UnitError> {
        let invalid = || UnitError::Quantity(text.to_owned());
        let captures = QUANTITY.captures(text.trim()).ok_or_else(invalid)?;
        let mut value: Decimal = captures[2].parse().map_err(|_| invalid())?;
        if &captures[1] == "-" {
            value.set_sign_negative(true);
        }
        let multiplier = |base: u64, power: u32| Decimal::from(base.pow(power));
        let (scaled, binary) = if let Some(suffix) = captures.get(3) {
            let power = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                .iter()
                .position(|s| *s == suffix.as_str())
                .unwrap_or(0) as u32
                + 1;
            (value.checked_mul(multiplier(1024, power)), true)
        } else if let Some(suffix) = captures.get(4) {
            let scaled = match suffix.as_str() {
                "n" => value.checked_div(Decimal::from(1_000_000_000u64)),
                "u" => value.checked_div(Decimal::from(1_000_000u64)),
                "m" => value.checked_div(Decimal::from(1000u64)),
                other => {
                    let power = ["k", "M", "G", "T", "P", "E"]
                        .iter()
                        .position(|s| *s == other)
                        .unwrap_or(0) as u32
                        + 1;
                    value.checked_mul(multiplier(1000, power))
                }
            };
            (scaled, false)
        } else if let Some(exponent) = captures.get(5) {
            let exponent: i32 = exponent.as_str().parse().map_err(|_| invalid())?;
            let scale = Decimal::from(
                10u64
                    .checked_pow(exponent.unsigned_abs())
                    .ok_or_else(|| UnitError::Overflow(text.to_owned()))?,
            );
            (
                if exponent >= 0 {
                    value.checked_mul(scale)
                } else {
                    value.checked_div(scale)
                },
                false,
            )
        } else {
            (Some(value), false)
        };
        let value = scaled.ok_or_else(|| UnitError::Overflow(text.to_owned()))?;
        Ok(Self { value, binary })
    }

    /// The amount in base units.
    pub fn value(&self) -> Decimal {
        self.value
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        Some(Self {
            value: self.value.checked_add(other.value)?,
            binary: self.binary || other.binary,
        })
    }

    pub fn checked_sub(self, other: Self) -> Option<Self> {
        Some(Self {
            value: self.value.checked_sub(other.value)?,
            binary: self.binary || other.binary,
        })
    }

    pub fn checked_mul(self, factor: Decimal) -> Option<Self> {
        Some(Self {
            value: self.value.checked_mul(factor)?,
            binary: self.binary,
        })
    }

    pub fn checked_div(self, divisor: Decimal) -> Option<Self> {
        Some(Self {
            value: self.value.checked_div(divisor)?,
            binary: self.binary,
        })
    }

    /// Whole bytes, rounded up (a fraction of a byte is a whole byte to the kubelet).
    pub fn to_bytes(&self) -> Option<Bytes> {
        if self.value.is_sign_negative() && !self.value.is_zero() {
            return None;
        }
        self.value.ceil().to_u64().map(Bytes)
    }

    /// Whole millicores, rounded up.
    pub fn to_millicores(&self) -> Option<Millicores> {
        if self.value.is_sign_negative() && !self.value.is_zero() {
            return None;
        }
        // Checked: `*` on a Decimal panics past 7.9e28 (a `coreLimit` of 79228162514264337593543950335 did).
        self.value
            .checked_mul(Decimal::from(1000))?
            .ceil()
            .to_u64()
            .map(Millicores)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl fmt::Display for Quantity {
    /// The canonical Kubernetes form: binary suffixes when written that way and exact, else the largest decimal
    /// suffix that keeps an integer, else milli, else a plain decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.value.normalize();
        if value.is_integer() {
            let suffixes: &[(&str, u64)] = if self.binary {
                &[
                    ("Ei", 1 << 60),
                    ("Pi", 1 << 50),
                    ("Ti", 1 << 40),
                    ("Gi", 1 << 30),
                    ("Mi", 1 << 20),
                    ("Ki", 1 << 10),
                ]
            } else {
                &[
                    ("E", 1_000_000_000_000_000_000),
                    ("P", 1_000_000_000_000_000),
                    ("T", 1_000_000_000_000),
                    ("G", 1_000_000_000),
                    ("M", 1_000_000),
                    ("k", 1000),
                ]
            };
            for (suffix, size) in suffixes {
                let size = Decimal::from(*size);
                if !value.is_zero() && (value % size).is_zero() {
                    return write!(f, "{}{suffix}", value / size);
                }
            }
            return write!(f, "{value}");
        }
        if let Some(milli) = value.checked_mul(Decimal::from(1000))
            && milli.is_integer()
        {
            return write!(f, "{}m", milli.normalize());
        }
        write!(f, "{value}")
    }
}

/// Reads a Kubernetes quantity as bytes, rounding a fractional byte up as the kubelet does.
pub(crate) fn quantity_bytes(text: &str) -> Result<Bytes, UnitError> {
    let quantity = Quantity::parse(text)?;
    if quantity.value.is_sign_negative() && !quantity.value.is_zero() {
        return Err(UnitError::Quantity(text.to_owned()));
    }
    quantity.to_bytes().ok_or_else(|| UnitError::Overflow(text.to_owned()))
}

/// Reads a Kubernetes cpu quantity (`500m`, `2`, `1.5`) as millicores, rounding up.
pub(crate) fn quantity_millicores(text: &str) -> Result<Millicores, UnitError> {
    let quantity = Quantity::parse(text)?;
    if quantity.value.is_sign_negative() && !quantity.value.is_zero() {
        return Err(UnitError::Quantity(text.to_owned()));
    }
    quantity
        .to_millicores()
        .ok_or_else(|| UnitError::Overflow(text.to_owned()))
}

/// A cpu count given as a JSON number (FlinkDeployment `resource.cpu`, Spark `cores`) as millicores.
pub(crate) fn cores_to_millicores(cores: f64) -> Option<Millicores> {
    if !cores.is_finite() || cores < 0.0 || cores * 1000.0 > u64::MAX as f64 {
        return None;
    }
    Some(Millicores((cores * 1000.0).ceil() as u64))
}

/// The memory overhead factor Spark applies when `memoryOverhead` is not given: 0.1 for JVM applications, 0.4 for
/// Python and R (Spark's `spark.kubernetes.memoryOverheadFactor` rule, as the Spark operator's quota check uses it).
pub(crate) fn spark_default_overhead_factor(application_type: &str) -> f64 {
    match application_type {
        "Python" | "R" => 0.4,
        _ => 0.1,
    }
}

/// Spark never asks for less overhead than this.
pub(crate) const SPARK_MIN_OVERHEAD: Bytes = Bytes(384 * MIB);

/// The memory a Spark driver or executor pod requests: memory plus overhead, where the overhead is the explicit
/// `memoryOverhead` if given, else `max(memory × factor, 384Mi)`.
pub(crate) fn spark_pod_memory(memory: Bytes, explicit_overhead: Option<Bytes>, factor: f64) -> Bytes {
    let overhead = explicit_overhead.unwrap_or_else(|| {
        let scaled = (memory.0 as f64 * factor).ceil();
        Bytes((scaled.min(u64::MAX as f64) as u64).max(SPARK_MIN_OVERHEAD.0))
    });
    Bytes(memory.0.saturating_add(overhead.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = MIB * KIB;

    #[test]
    fn quantities_near_the_decimal_limit_are_errors_not_panics() {
        // Regression (fuzz/regressions/admission_review-core-limit-overflow.json): `*` on a Decimal panics on
        // overflow, and a Spark `coreLimit` of Decimal::MAX made /validate answer 500.
        let max = "79228162514264337593543950335";
        assert!(matches!(quantity_millicores(max), Err(UnitError::Overflow(_))));
        assert!(matches!(quantity_millicores("7.9e28"), Err(UnitError::Overflow(_))));
        assert_eq!(Quantity::parse(max).unwrap().to_string(), max);
        let fraction = "7922816251426433759354395033.5";
        assert_eq!(Quantity::parse(fraction).unwrap().to_string(), fraction);
        assert_eq!(quantity_millicores("1.5"), Ok(Millicores(1500)));
    }

    #[test]
    fn flink_lowercase_m_is_mebibytes_not_milli() {
        assert_eq!(flink_memory("2048m"), Ok(Bytes(2048 * MIB)));
        assert_eq!(flink_memory("2048 MB"), Ok(Bytes(2048 * MIB)));
        assert_eq!(flink_memory("1g"), Ok(Bytes(GIB)));
        assert_eq!(flink_memory("1G"), Ok(Bytes(GIB)));
        assert_eq!(flink_memory("512 mebibytes"), Ok(Bytes(512 * MIB)));
        assert_eq!(flink_memory("1024"), Ok(Bytes(1024)));
        assert_eq!(flink_memory("4k"), Ok(Bytes(4096)));
        assert_eq!(flink_memory("1t"), Ok(Bytes(GIB * KIB)));
    }

    #[test]
    fn flink_falls_back_to_kubernetes_quantities() {
        assert_eq!(flink_memory("2Gi"), Ok(Bytes(2 * GIB)));
        assert_eq!(flink_memory("1.5Gi"), Ok(Bytes(3 * GIB / 2)));
        assert_eq!(flink_memory("1M"), Ok(Bytes(MIB)), "Flink's M is MiB; MemorySize wins");
        assert_eq!(flink_memory("1e3"), Ok(Bytes(1000)));
    }

    #[test]
    fn flink_rejects_nonsense_with_a_hint() {
        let error = flink_memory("lots").unwrap_err();
        assert_eq!(error, UnitError::FlinkMemory("lots".into()));
        assert!(error.to_string().contains("2048m"));
        assert!(flink_memory("").is_err());
        assert!(flink_memory("-1g").is_err());
        assert!(matches!(flink_memory("99999999999999t"), Err(UnitError::Overflow(_))));
    }

    #[test]
    fn kubernetes_lowercase_m_is_milli() {
        // The trap: the same string is 2 GiB to Flink and 2.048 bytes (rounded up to 3) to Kubernetes.
        assert_eq!(quantity_bytes("2048m"), Ok(Bytes(3)));
        assert_ne!(quantity_bytes("2048m"), flink_memory("2048m"));
        assert_eq!(quantity_bytes("2Gi"), Ok(Bytes(2 * GIB)));
        assert_eq!(quantity_bytes("1G"), Ok(Bytes(1_000_000_000)));
        assert_eq!(quantity_bytes("512Mi"), Ok(Bytes(512 * MIB)));
        assert_eq!(quantity_bytes("100"), Ok(Bytes(100)));
        assert!(quantity_bytes("2 GB").is_err());
        assert!(quantity_bytes("-1Gi").is_err());
    }

    #[test]
    fn kubernetes_cpu_quantities() {
        assert_eq!(quantity_millicores("500m"), Ok(Millicores(500)));
        assert_eq!(quantity_millicores("2"), Ok(Millicores(2000)));
        assert_eq!(quantity_millicores("1.5"), Ok(Millicores(1500)));
        assert_eq!(quantity_millicores("0.1"), Ok(Millicores(100)));
        assert!(quantity_millicores("one").is_err());
        assert_eq!(cores_to_millicores(0.25), Some(Millicores(250)));
        assert_eq!(cores_to_millicores(-1.0), None);
        assert_eq!(cores_to_millicores(f64::NAN), None);
    }

    #[test]
    fn spark_memory_strings() {
        assert_eq!(spark_memory("512m"), Ok(Bytes(512 * MIB)));
        assert_eq!(spark_memory("1g"), Ok(Bytes(GIB)));
        assert_eq!(spark_memory("2G"), Ok(Bytes(2 * GIB)));
        assert_eq!(spark_memory("2gb"), Ok(Bytes(2 * GIB)));
        assert_eq!(
            spark_memory("1024"),
            Ok(Bytes(1024 * MIB)),
            "bare numbers are MiB in Spark"
        );
        assert_eq!(spark_memory("1024k"), Ok(Bytes(MIB)));
        assert!(spark_memory("1Gi").is_err(), "Spark does not read Kubernetes suffixes");
        assert!(spark_memory("1.5g").is_err(), "the JVM takes whole numbers only");
        assert!(spark_memory("").is_err());
    }

    #[test]
    fn spark_overhead_rules() {
        // 1g executor of a Python app: 0.4 × 1 GiB = 409.6 MiB > 384 MiB.
        let python = spark_pod_memory(Bytes(GIB), None, spark_default_overhead_factor("Python"));
        assert_eq!(python, Bytes(GIB + (GIB as f64 * 0.4).ceil() as u64));
        // 1g of a JVM app: 0.1 × 1 GiB = 102.4 MiB < 384 MiB, so the floor applies.
        let jvm = spark_pod_memory(Bytes(GIB), None, spark_default_overhead_factor("Scala"));
        assert_eq!(jvm, Bytes(GIB + 384 * MIB));
        // An explicit overhead wins over both.
        assert_eq!(
            spark_pod_memory(Bytes(GIB), Some(Bytes(100 * MIB)), 0.4),
            Bytes(GIB + 100 * MIB)
        );
    }

    #[test]
    fn quantities_compare_by_amount_whatever_the_notation() {
        let q = |text: &str| Quantity::parse(text).unwrap();
        assert_eq!(q("2147483648"), q("2Gi"));
        assert_eq!(q("1500m"), q("1.5"));
        assert_eq!(q("1e3"), q("1k"));
        assert!(q("1G") < q("1Gi"));
        assert_eq!(q("1Gi").checked_add(q("512Mi")).unwrap().to_string(), "1536Mi");
        assert_eq!(q("3").checked_div(Decimal::from(2)).unwrap().to_string(), "1500m");
        assert_eq!(q("2Gi").checked_mul(Decimal::from(3)).unwrap().to_string(), "6Gi");
        assert_eq!(q("1000").to_string(), "1k");
        assert_eq!(q("0").to_string(), "0");
        assert_eq!(q("-1").to_string(), "-1");
        assert!(Quantity::parse("1 Gi").is_err());
        assert!(Quantity::parse("1Gb").is_err());
    }

    #[test]
    fn display_is_exact_and_short() {
        assert_eq!(Bytes(2 * GIB).to_string(), "2Gi");
        assert_eq!(Bytes(1536 * MIB).to_string(), "1536Mi");
        assert_eq!(Bytes(1000).to_string(), "1000");
        assert_eq!(Millicores(2000).to_string(), "2");
        assert_eq!(Millicores(1500).to_string(), "1500m");
    }
}

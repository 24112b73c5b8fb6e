//! What each tenant runs now: running totals per namespace, fed by a watch on the runner CRs, plus reservations
//! for objects this replica admitted but the watch has not delivered yet.
//!
//! A check sums a tenant's namespaces (a handful), never its jobs, so it costs the same with 10 or 10,000 jobs.
//! Reservations close the gap between "admitted" and "seen": two quick creates cannot both slip under the budget
//! on one replica. They expire after a while (another webhook may have denied the object after we allowed it),
//! which errs on the side of counting too much for that while. Across replicas nothing is shared: two replicas
//! admitting at the same instant can each let one job through (docs/policies.md, "Usage and races").

use super::demand::Demand;
use crate::kinds::RunnerKind;
use crate::units::{Bytes, Quantity};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an admitted object counts as reserved if the watch never reports it.
pub(crate) const RESERVATION_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: RunnerKind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: RunnerKind, namespace: &str, name: &str) -> Self {
        Self {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct UsageLedger {
    observed: HashMap<ObjectKey, Demand>,
    per_namespace: HashMap<String, Demand>,
    reservations: HashMap<String, HashMap<ObjectKey, (Demand, Instant)>>,
}

impl UsageLedger {
    /// The watch saw `key` with this demand (created or changed). Its reservation, if any, is settled.
    pub fn observe(&mut self, key: ObjectKey, demand: Demand) {
        if let Some(reserved) = self.reservations.get_mut(&key.namespace) {
            reserved.remove(&key);
        }
        let total = self.per_namespace.entry(key.namespace.clone()).or_default();
        if let Some(previous) = self.observed.insert(key, demand) {
            *total = total.minus(previous);
        }
        *total = total.plus(demand);
    }

    /// The watch saw `key` deleted.
    pub fn forget(&mut self, key: &ObjectKey) {
        if let Some(previous) = self.observed.remove(key)
            && let Some(total) = self.per_namespace.get_mut(&key.namespace)
        {
            *total = total.minus(previous);
        }
        if let Some(reserved) = self.reservations.get_mut(&key.namespace) {
            reserved.remove(key);
        }
    }

    /// After a re-list of one kind: forgets the objects of that kind the re-list did not see (deleted meanwhile).
    pub fn retain_kind(&mut self, kind: RunnerKind, mut keep: impl FnMut(&ObjectKey) -> bool) {
        let gone: Vec<ObjectKey> = self
            .observed
            .keys()
            .filter(|key| key.kind == kind && !keep(key))
            .cloned()
            .collect();
        for key in gone {
            self.forget(&key);
        }
    }

    /// This replica admitted `key` with this demand; count it until the watch reports it or `until` passes.
    pub fn reserve(&mut self, key: ObjectKey, demand: Demand, until: Instant) {
        self.reservations
            .entry(key.namespace.clone())
            .or_default()
            .insert(key, (demand, until));
    }

    /// Drops expired reservations.
    pub fn expire(&mut self, now: Instant) {
        for reserved in self.reservations.values_mut() {
            reserved.retain(|_, (_, until)| *until > now);
        }
        self.reservations.retain(|_, reserved| !reserved.is_empty());
    }

    /// What a namespace runs, with `excluding` counted out (the object an UPDATE replaces).
    pub fn namespace_usage(&self, namespace: &str, excluding: Option<&ObjectKey>, now: Instant) -> Demand {
        let mut usage = self.per_namespace.get(namespace).copied().unwrap_or_default();
        let counted_out = |key: &ObjectKey| Some(key) == excluding;
        if let Some(key) = excluding.filter(|key| key.namespace == namespace)
            && let Some(observed) = self.observed.get(key)
        {
            usage = usage.minus(*observed);
        }
        for (key, (demand, until)) in self.reservations.get(namespace).into_iter().flatten() {
            if *until <= now || counted_out(key) {
                continue;
            }
            // A reservation for an object the watch already knows replaces its observed demand.
            if let Some(observed) = self.observed.get(key) {
                usage = usage.minus(*observed);
            }
            usage = usage.plus(*demand);
        }
        usage
    }

    pub fn observed_count(&self) -> usize {
        self.observed.len()
    }
}

/// A stated usage total with an amount that is not a quantity, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct BadUsage {
    pub key: &'static str,
    pub problem: String,
}

/// A usage total from a stated file: `{cpu: "12", memory: "40Gi", jobs: 3, workers: 10}`.
pub fn usage_from_json(value: &serde_json::Value) -> Result<Demand, BadUsage> {
    let quantity = |key: &'static str| -> Result<Option<Quantity>, BadUsage> {
        let bad = |problem: String| BadUsage { key, problem };
        value
            .get(key)
            .map(|amount| match amount {
                serde_json::Value::String(text) => Quantity::parse(text).map_err(|error| bad(error.to_string())),
                serde_json::Value::Number(number) => {
                    Quantity::parse(&number.to_string()).map_err(|error| bad(error.to_string()))
                }
                other => Err(bad(format!("expected a quantity, got {other}"))),
            })
            .transpose()
    };
    let count = |key: &str| value.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
    Ok(Demand {
        cpu: quantity("cpu")?.and_then(|q| q.to_millicores()).unwrap_or_default(),
        memory: quantity("memory")?.and_then(|q| q.to_bytes()).unwrap_or(Bytes(0)),
        jobs: count("jobs"),
        workers: count("workers"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{Bytes, Millicores};

    fn demand(cpu: u64) -> Demand {
        Demand {
            cpu: Millicores(cpu),
            memory: Bytes(cpu * 10),
            workers: 1,
            jobs: 1,
        }
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new(RunnerKind::FlinkDeployment, "team-a", name)
    }

    #[test]
    fn totals_follow_creates_updates_and_deletes() {
        let now = Instant::now();
        let mut ledger = UsageLedger::default();
        ledger.observe(key("a"), demand(1000));
        ledger.observe(key("b"), demand(2000));
        assert_eq!(ledger.namespace_usage("team-a", None, now).cpu, Millicores(3000));
        ledger.observe(key("a"), demand(4000));
        assert_eq!(ledger.namespace_usage("team-a", None, now).cpu, Millicores(6000));
        assert_eq!(
            ledger.namespace_usage("team-a", Some(&key("a")), now).cpu,
            Millicores(2000),
            "an UPDATE counts the old object out"
        );
        ledger.forget(&key("b"));
        assert_eq!(ledger.namespace_usage("team-a", None, now), demand(4000));
        assert_eq!(ledger.namespace_usage("elsewhere", None, now), Demand::default());
    }

    #[test]
    fn reservations_count_until_seen_or_expired() {
        let now = Instant::now();
        let mut ledger = UsageLedger::default();
        ledger.observe(key("a"), demand(1000));
        ledger.reserve(key("b"), demand(2000), now + RESERVATION_TTL);
        assert_eq!(ledger.namespace_usage("team-a", None, now).cpu, Millicores(3000));
        // The watch delivers b: the reservation is settled, not counted twice.
        ledger.observe(key("b"), demand(2000));
        assert_eq!(ledger.namespace_usage("team-a", None, now).cpu, Millicores(3000));
        // An admitted UPDATE of a replaces a's observed demand until the watch catches up.
        ledger.reserve(key("a"), demand(5000), now + RESERVATION_TTL);
        assert_eq!(ledger.namespace_usage("team-a", None, now).cpu, Millicores(7000));
        // Expired reservations stop counting.
        ledger.reserve(key("c"), demand(9000), now + Duration::from_secs(1));
        assert_eq!(
            ledger.namespace_usage("team-a", None, now + Duration::from_secs(2)).cpu,
            Millicores(7000)
        );
        ledger.expire(now + Duration::from_secs(2));
        assert_eq!(ledger.namespace_usage("team-a", None, now).cpu, Millicores(7000));
    }

    #[test]
    fn a_relist_forgets_what_it_did_not_see() {
        let now = Instant::now();
        let mut ledger = UsageLedger::default();
        ledger.observe(key("a"), demand(1000));
        ledger.observe(key("b"), demand(2000));
        ledger.observe(ObjectKey::new(RunnerKind::SparkApplication, "team-a", "s"), demand(500));
        ledger.retain_kind(RunnerKind::FlinkDeployment, |key| key.name == "a");
        assert_eq!(
            ledger.namespace_usage("team-a", None, now).cpu,
            Millicores(1500),
            "b is gone, the Spark job stays"
        );
    }

    #[test]
    fn a_check_costs_the_same_with_ten_thousand_jobs() {
        let now = Instant::now();
        let mut ledger = UsageLedger::default();
        for index in 0..10_000 {
            ledger.observe(
                ObjectKey::new(
                    RunnerKind::SparkApplication,
                    &format!("ns-{}", index % 50),
                    &format!("job-{index}"),
                ),
                demand(100),
            );
        }
        assert_eq!(ledger.observed_count(), 10_000);
        assert_eq!(ledger.namespace_usage("ns-7", None, now).jobs, 200);
    }
}

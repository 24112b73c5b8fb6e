//! Which tenant a namespace belongs to, from the Tenant objects and the namespaces' labels.

use super::model::Tenant;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Tenants with their selectors parsed, and the namespaces' labels.
#[derive(Debug, Clone, Default)]
pub struct TenantDirectory {
    tenants: Vec<(Arc<Tenant>, Option<Selector>)>,
    namespace_labels: HashMap<String, BTreeMap<String, String>>,
}

impl TenantDirectory {
    /// Tenants are kept sorted by name, so a namespace two tenants claim always goes to the same one.
    pub fn new(mut tenants: Vec<Tenant>, namespace_labels: HashMap<String, BTreeMap<String, String>>) -> Self {
        tenants.sort_by_key(|tenant| tenant.name_any());
        let tenants = tenants
            .into_iter()
            .map(|tenant| {
                let selector = tenant
                    .spec
                    .namespace_selector
                    .clone()
                    .and_then(|selector| Selector::try_from(selector).ok());
                (Arc::new(tenant), selector)
            })
            .collect();
        Self {
            tenants,
            namespace_labels,
        }
    }

    pub fn tenants(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.tenants.iter().map(|(tenant, _)| tenant)
    }

    pub fn namespace_labels_all(&self) -> &HashMap<String, BTreeMap<String, String>> {
        &self.namespace_labels
    }

    pub fn namespace_labels(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.namespace_labels.get(namespace)
    }

    fn claims(&self, entry: &(Arc<Tenant>, Option<Selector>), namespace: &str) -> bool {
        let (tenant, selector) = entry;
        tenant.spec.namespaces.iter().any(|name| name == namespace)
            || selector.as_ref().is_some_and(|selector| {
                self.namespace_labels
                    .get(namespace)
                    .is_some_and(|labels| selector.matches(labels))
            })
    }

    /// The tenant whose namespaces include `namespace`.
    pub fn tenant_for(&self, namespace: &str) -> Option<&Arc<Tenant>> {
        self.tenants
            .iter()
            .find(|entry| self.claims(entry, namespace))
            .map(|(tenant, _)| tenant)
    }

    /// Every namespace that belongs to `tenant` (named, or known and matching its selector), plus `also`.
    pub fn namespaces_of(&self, tenant: &Tenant, also: &str) -> Vec<String> {
        let Some(entry) = self
            .tenants
            .iter()
            .find(|(candidate, _)| candidate.name_any() == tenant.name_any())
        else {
            return vec![also.to_owned()];
        };
        let mut namespaces: Vec<String> = entry.0.spec.namespaces.clone();
        for namespace in self.namespace_labels.keys() {
            if !namespaces.contains(namespace) && self.claims(entry, namespace) {
                // A namespace claimed first by another tenant is that tenant's.
                if self
                    .tenant_for(namespace)
                    .is_some_and(|owner| owner.name_any() == tenant.name_any())
                {
                    namespaces.push(namespace.clone());
                }
            }
        }
        if !namespaces.iter().any(|namespace| namespace == also) {
            namespaces.push(also.to_owned());
        }
        namespaces.sort();
        namespaces
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::TenantSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn tenant(name: &str, namespaces: &[&str], selector: Option<(&str, &str)>) -> Tenant {
        Tenant::new(
            name,
            TenantSpec {
                namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
                namespace_selector: selector.map(|(key, value)| LabelSelector {
                    match_labels: Some(BTreeMap::from([(key.to_owned(), value.to_owned())])),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
    }

    #[test]
    fn namespaces_by_name_or_by_label() {
        let labels = HashMap::from([
            (
                "analytics-dev".to_owned(),
                BTreeMap::from([("beamstack.dev/tenant".to_owned(), "analytics".to_owned())]),
            ),
            ("other".to_owned(), BTreeMap::new()),
        ]);
        let directory = TenantDirectory::new(
            vec![
                tenant("team-a", &["team-a", "team-a-dev"], None),
                tenant("analytics", &[], Some(("beamstack.dev/tenant", "analytics"))),
            ],
            labels,
        );
        assert_eq!(
            directory.tenant_for("team-a-dev").map(|t| t.name_any()),
            Some("team-a".into())
        );
        assert_eq!(
            directory.tenant_for("analytics-dev").map(|t| t.name_any()),
            Some("analytics".into())
        );
        assert!(directory.tenant_for("other").is_none());
        let analytics = directory.tenant_for("analytics-dev").unwrap().clone();
        assert_eq!(directory.namespaces_of(&analytics, "analytics-dev"), ["analytics-dev"]);
        let team_a = directory.tenant_for("team-a").unwrap().clone();
        assert_eq!(directory.namespaces_of(&team_a, "team-a"), ["team-a", "team-a-dev"]);
    }
}

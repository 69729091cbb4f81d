//! The Connect operations the gateway calls, as one type: a metric label, a
//! cache's outcome, an error message and a rate limit all name the same
//! thing. Each operation's request and answer live in its own file
//! (`monitor_contact.rs`, `describe_contact.rs`, …); this is what they share.

use std::fmt;

use http::Method;

/// One operation of Amazon Connect's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Operation {
    MonitorContact,
    DescribeContact,
    DescribeUser,
    ListSecurityProfilePermissions,
    SearchUsers,
    GetCurrentUserData,
}

/// A Connect quota: calls per second and burst, per AWS account and Region,
/// shared by every caller there (Connect's documented defaults; an account
/// may have had them raised through Service Quotas).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Quota {
    pub(crate) rate: f64,
    pub(crate) burst: u32,
}

impl Operation {
    /// Connect's name for it, as in `connect:DescribeContact` (also the
    /// `operation` label of the metrics).
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Operation::MonitorContact => "MonitorContact",
            Operation::DescribeContact => "DescribeContact",
            Operation::DescribeUser => "DescribeUser",
            Operation::ListSecurityProfilePermissions => "ListSecurityProfilePermissions",
            Operation::SearchUsers => "SearchUsers",
            Operation::GetCurrentUserData => "GetCurrentUserData",
        }
    }

    /// The HTTP method of its route. GETs carry no body and no content type.
    pub(crate) fn method(self) -> Method {
        match self {
            Operation::DescribeContact | Operation::DescribeUser | Operation::ListSecurityProfilePermissions => {
                Method::GET
            }
            Operation::MonitorContact | Operation::SearchUsers | Operation::GetCurrentUserData => Method::POST,
        }
    }

    /// Its route, with `{labels}` where the request's ids go.
    pub(crate) const fn route(self) -> &'static str {
        match self {
            Operation::MonitorContact => "/contact/monitor",
            Operation::DescribeContact => "/contacts/{InstanceId}/{ContactId}",
            Operation::DescribeUser => "/users/{InstanceId}/{UserId}",
            Operation::ListSecurityProfilePermissions => {
                "/security-profiles-permissions/{InstanceId}/{SecurityProfileId}"
            }
            Operation::SearchUsers => "/search-users",
            Operation::GetCurrentUserData => "/metrics/userdata/{InstanceId}",
        }
    }

    /// Connect's default quota for it: DescribeContact 10/s, burst 15; the
    /// others 2/s, burst 5.
    pub(crate) fn quota(self) -> Quota {
        match self {
            Operation::DescribeContact => Quota { rate: 10.0, burst: 15 },
            _ => Quota { rate: 2.0, burst: 5 },
        }
    }

    /// What a lookup finds, for "Connect found no such …"; `None` for
    /// MonitorContact, which looks nothing up.
    pub(crate) fn looks_up(self) -> Option<&'static str> {
        match self {
            Operation::MonitorContact => None,
            Operation::DescribeContact => Some("contact"),
            Operation::DescribeUser | Operation::SearchUsers => Some("user"),
            Operation::ListSecurityProfilePermissions => Some("security profile"),
            Operation::GetCurrentUserData => Some("instance"),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Operation; 6] = [
        Operation::MonitorContact,
        Operation::DescribeContact,
        Operation::DescribeUser,
        Operation::ListSecurityProfilePermissions,
        Operation::SearchUsers,
        Operation::GetCurrentUserData,
    ];

    #[test]
    fn lookups_by_id_are_gets_and_the_rest_posts() {
        for op in ALL {
            // GetCurrentUserData names the instance in its path and posts its filters.
            let by_path =
                op.route().contains('{') && !matches!(op, Operation::MonitorContact | Operation::GetCurrentUserData);
            assert_eq!(op.method() == Method::GET, by_path, "{op}");
        }
    }

    #[test]
    fn every_operation_has_connects_default_quota() {
        assert_eq!(Operation::DescribeContact.quota(), Quota { rate: 10.0, burst: 15 });
        for op in ALL.into_iter().filter(|op| *op != Operation::DescribeContact) {
            assert_eq!(op.quota(), Quota { rate: 2.0, burst: 5 }, "{op}");
        }
    }
}

//! The ListSecurityProfilePermissions operation (docs/connect.md, "Lookups"):
//! signed GETs of `/security-profiles-permissions/{InstanceId}/{SecurityProfileId}`,
//! page after page until Connect gives no `NextToken`, for the permission
//! names a security profile grants.

use std::collections::HashSet;

use serde::Deserialize;

use super::client::{Call, ConnectFailure, Lookup};
use super::endpoint::path_label;
use super::operation::Operation;

const OPERATION: Operation = Operation::ListSecurityProfilePermissions;

/// The largest page Connect accepts: the fewest calls against a quota of 2/s.
pub(crate) const PAGE_SIZE: u32 = 1000;

/// Connect serves at most 500 permissions a page, and a profile holds a few
/// hundred at most: a Connect that pages on past this is looping, and must
/// not hold a request (or the quota) any longer than the deadline would.
pub(crate) const MAX_PAGES: usize = 50;

/// The request path of one page: the labels percent-encoded, then the page
/// size and, after the first page, the token Connect gave.
pub(crate) fn path(instance_id: &str, profile_id: &str, next_token: Option<&str>) -> String {
    let mut path = format!(
        "/security-profiles-permissions/{}/{}?maxResults={PAGE_SIZE}",
        path_label(instance_id),
        path_label(profile_id)
    );
    if let Some(token) = next_token {
        // A query value is encoded exactly as a path label: only the
        // unreserved characters stay, so the token's `/`, `+` and `=` cannot
        // be read as anything but the token.
        path.push_str("&nextToken=");
        path.push_str(&path_label(token));
    }
    path
}

/// One page of the answer.
#[derive(Deserialize)]
struct Page {
    /// A page may carry none (paging can end on an empty page); no
    /// permission read is no permission granted.
    #[serde(rename = "Permissions", default)]
    permissions: Vec<String>,
    #[serde(rename = "NextToken", default)]
    next_token: Option<String>,
}

/// Every permission of one security profile, gathered across its pages.
pub(crate) async fn list_security_profile_permissions(
    at: Lookup<'_>,
    profile_id: &str,
) -> Result<Vec<String>, ConnectFailure> {
    let mut permissions = Vec::new();
    let mut tokens_seen = HashSet::new();
    let mut next_token: Option<String> = None;
    let mut pages = 0;
    loop {
        let call = Call::get(OPERATION, path(at.instance_id, profile_id, next_token.as_deref()));
        let reply = at.send(&call).await?;
        pages += 1;
        let page: Page =
            serde_json::from_slice(&reply.body).map_err(|_| ConnectFailure::bad_response(OPERATION, &reply))?;
        permissions.extend(page.permissions);
        // Like the SDK's paginators, an empty token ends the list too.
        match page.next_token.filter(|t| !t.is_empty()) {
            None => return Ok(permissions),
            // A token given twice would page round the same loop forever.
            Some(token) if pages >= MAX_PAGES || !tokens_seen.insert(token.clone()) => {
                return Err(ConnectFailure::bad_response(OPERATION, &reply));
            }
            Some(token) => next_token = Some(token),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_page_asks_for_the_largest_page_with_its_labels_encoded() {
        assert_eq!(
            path("inst-1", "a b/c", None),
            "/security-profiles-permissions/inst-1/a%20b%2Fc?maxResults=1000"
        );
        assert_eq!(
            path("arn:aws:x", "sp", None),
            "/security-profiles-permissions/arn%3Aaws%3Ax/sp?maxResults=1000"
        );
    }

    #[test]
    fn the_next_token_travels_as_an_encoded_query_value() {
        assert_eq!(
            path("inst-1", "sp-1", Some("page/2+x=&y")),
            "/security-profiles-permissions/inst-1/sp-1?maxResults=1000&nextToken=page%2F2%2Bx%3D%26y"
        );
    }

    #[test]
    fn a_page_without_permissions_or_token_reads_as_an_empty_last_page() {
        let page: Page = serde_json::from_str(r#"{"NextToken": null}"#).unwrap();
        assert!(page.permissions.is_empty());
        assert_eq!(page.next_token, None);
        assert!(serde_json::from_str::<Page>(r#"{"Permissions": [1]}"#).is_err());
        assert!(serde_json::from_str::<Page>(r#"["ManagerListenIn"]"#).is_err());
    }
}

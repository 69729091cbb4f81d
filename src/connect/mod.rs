//! Everything about calling Amazon Connect: where a call goes (endpoints),
//! with whose identity (credentials, SigV4 signing), how it is retried and
//! paced (one client for every operation), how Connect's errors read, and one
//! file per operation with that operation's own facts.

pub(crate) mod budget;
pub(crate) mod client;
pub(crate) mod credentials;
pub(crate) mod describe_contact;
pub(crate) mod describe_user;
pub(crate) mod endpoint;
pub(crate) mod error;
pub(crate) mod get_current_user_data;
pub(crate) mod list_security_profile_permissions;
pub(crate) mod monitor_contact;
pub(crate) mod monitor_request;
pub(crate) mod operation;
pub(crate) mod retry;
pub(crate) mod search_users;
pub(crate) mod settings;
pub(crate) mod signing;

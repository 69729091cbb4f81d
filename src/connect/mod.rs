//! Everything about calling Amazon Connect: where a call goes (endpoints),
//! with whose identity (credentials, SigV4 signing), how it is retried and
//! paced (one client for every operation), how Connect's errors read, and one
//! file per operation with that operation's own facts.

pub mod client;
pub mod credentials;
pub mod describe_contact;
pub mod describe_user;
pub mod endpoint;
pub mod error;
pub mod list_security_profile_permissions;
pub mod monitor_contact;
pub mod monitor_request;
pub mod rate_limit;
pub mod retry;
pub mod search_users;
pub mod settings;
pub mod signing;

//! Authentication: who the caller is, from its bearer token, checked against
//! the configured issuers' published keys with the algorithms the config
//! allows — never what the token asks for.

pub mod issuer;
pub mod jwks;
pub mod settings;
pub mod token;
pub mod verified;

//! Authentication: who the caller is, from its bearer token, checked against
//! the configured issuers' published keys with the algorithms the config
//! allows — never what the token asks for.

pub(crate) mod issuer;
pub(crate) mod jwks;
pub(crate) mod settings;
pub(crate) mod token;
pub(crate) mod verified;

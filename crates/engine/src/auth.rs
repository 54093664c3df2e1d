//! `X-Registry-Auth`: registry credentials for pulls during service create and update.

use base64::Engine as _;
use serde::Serialize;

/// Credentials for a registry, sent as the `X-Registry-Auth` header: JSON, base64url
/// encoded with padding, as the engine decodes it.
///
/// `Debug` never shows the secret.
///
/// ```
/// use dockhand_engine::RegistryAuth;
///
/// let auth = RegistryAuth::password("ci", "s3cret", "registry.example.com");
/// assert!(!format!("{auth:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    /// A user name and password (or access token used as a password).
    Password {
        /// The user.
        username: String,
        /// The password or token.
        password: String,
        /// The registry, such as `registry.example.com`.
        server_address: String,
    },
    /// An identity token from a registry's token service.
    IdentityToken(String),
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Password { username, server_address, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"****")
                .field("server_address", server_address)
                .finish(),
            Self::IdentityToken(_) => f.write_str("IdentityToken(****)"),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum Wire<'a> {
    Password { username: &'a str, password: &'a str, serveraddress: &'a str },
    Token { identitytoken: &'a str },
}

impl RegistryAuth {
    /// User name and password for `server_address`.
    pub fn password(
        username: impl Into<String>,
        password: impl Into<String>,
        server_address: impl Into<String>,
    ) -> Self {
        Self::Password {
            username: username.into(),
            password: password.into(),
            server_address: server_address.into(),
        }
    }

    /// The header's value.
    pub(crate) fn header_value(&self) -> String {
        let wire = match self {
            Self::Password { username, password, server_address } => {
                Wire::Password { username, password, serveraddress: server_address }
            }
            Self::IdentityToken(token) => Wire::Token { identitytoken: token },
        };
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE.encode(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(value: &str) -> serde_json::Value {
        let raw = base64::engine::general_purpose::URL_SAFE.decode(value).unwrap();
        serde_json::from_slice(&raw).unwrap()
    }

    #[test]
    fn padded_base64url_json() {
        // A password with characters that standard base64 would encode as + and /.
        let auth = RegistryAuth::password("ci?user", "p>?~ss", "registry.example.com:5000");
        let value = auth.header_value();
        assert!(!value.contains('+') && !value.contains('/'), "{value}");
        assert_eq!(value.len() % 4, 0, "padded: {value}");
        assert_eq!(
            decode(&value),
            serde_json::json!({"username":"ci?user","password":"p>?~ss","serveraddress":"registry.example.com:5000"})
        );
        let token = RegistryAuth::IdentityToken("tok".into()).header_value();
        assert_eq!(decode(&token), serde_json::json!({"identitytoken":"tok"}));
    }

    #[test]
    fn debug_hides_secrets() {
        let shown = format!(
            "{:?} {:?}",
            RegistryAuth::password("u", "hunter2", "r"),
            RegistryAuth::IdentityToken("tok-9".into())
        );
        assert!(!shown.contains("hunter2") && !shown.contains("tok-9"), "{shown}");
    }
}

//! Layered configuration: `configuration/base.yaml` → `configuration/<environment>.yaml` →
//! `APP__…` environment variables (`APP__DATABASE__URL` sets `database.url`). Secrets come
//! only from the environment.

use anyhow::Context;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Loads settings from `dir`. The environment name comes from `APP_ENVIRONMENT` (default
/// `local`); its file is optional so a deployment can rely on variables alone.
pub fn load<T: DeserializeOwned>(dir: &Path) -> anyhow::Result<T> {
    let environment = std::env::var("APP_ENVIRONMENT").unwrap_or_else(|_| "local".into());
    let settings = config::Config::builder()
        .add_source(config::File::from(dir.join("base.yaml")))
        .add_source(config::File::from(dir.join(format!("{environment}.yaml"))).required(false))
        .add_source(
            config::Environment::with_prefix("APP")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .with_context(|| format!("reading configuration from {}", dir.display()))?;
    settings.try_deserialize().context("configuration is invalid")
}

/// Loads a service's settings from `APP_CONFIG_DIR`, or else from the `configuration/` folder
/// next to its `Cargo.toml` (pass `env!("CARGO_MANIFEST_DIR")`), as in a source checkout.
pub fn load_service<T: DeserializeOwned>(manifest_dir: &str) -> anyhow::Result<T> {
    let dir = std::env::var_os("APP_CONFIG_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(manifest_dir).join("configuration"));
    load(&dir)
}

/// Settings from YAML text alone (a built-in `base.yaml`), without environment files or
/// variables.
pub fn from_yaml_str<T: DeserializeOwned>(yaml: &str) -> anyhow::Result<T> {
    config::Config::builder()
        .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
        .build()
        .context("reading YAML configuration")?
        .try_deserialize()
        .context("configuration is invalid")
}

/// Names the field that failed validation, for start-up errors.
#[derive(Debug, thiserror::Error)]
#[error("configuration field '{field}' is invalid: {reason}")]
pub struct InvalidSetting {
    pub field: &'static str,
    pub reason: String,
}

/// A Postgres schema or similar identifier: lower-case letters, digits and underscores.
pub fn validate_identifier(field: &'static str, value: &str) -> Result<(), InvalidSetting> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(InvalidSetting {
            field,
            reason: format!("'{value}' is not a lower-case identifier"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked() {
        assert!(validate_identifier("database.schema", "enrollment").is_ok());
        assert!(validate_identifier("database.schema", "t_1a2b_enrollment").is_ok());
        let e = validate_identifier("database.schema", "drop table;").unwrap_err();
        assert!(e.to_string().contains("database.schema"));
        assert!(validate_identifier("database.schema", "").is_err());
    }
}

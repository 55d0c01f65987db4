//! `etc/glance-api.conf`: INI in oslo.config style. Option names follow upstream Glance where
//! one exists; Glint's own options live in `[glint]`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ini::Ini;

#[derive(Clone, Debug)]
pub struct Config {
    pub data_dirs: Vec<PathBuf>,
    pub catalog_dir: PathBuf,
    pub chunk_size: usize,
    pub glance_addr: SocketAddr,
    pub image_size_cap: u64,
    pub s3_addr: SocketAddr,
    pub s3_domain: Option<String>,
    pub s3_region: String,
    pub s3_bootstrap: Option<(String, String, String)>,
    pub s3_max_put_size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: ini::Error },
    #[error("[{section}] {key}: {reason}")]
    Invalid {
        section: &'static str,
        key: &'static str,
        reason: String,
    },
}

struct Reader(Ini);

impl Reader {
    fn get(&self, section: &'static str, key: &'static str) -> Option<String> {
        let sec = if section == "DEFAULT" {
            None
        } else {
            Some(section)
        };
        self.0
            .section(sec)
            .and_then(|s| s.get(key))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        section: &'static str,
        key: &'static str,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(section, key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| ConfigError::Invalid {
                section,
                key,
                reason: e.to_string(),
            }),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let ini = Ini::load_from_file(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_ini(ini)
    }

    /// The built-in defaults: the embedded store under `./var`.
    pub fn defaults() -> Config {
        Self::from_ini(Ini::new()).expect("defaults are valid")
    }

    fn from_ini(ini: Ini) -> Result<Config, ConfigError> {
        let r = Reader(ini);
        let addr = |section,
                    host_key,
                    port_key,
                    host: &str,
                    port: u16|
         -> Result<SocketAddr, ConfigError> {
            let h: String = r.parse(section, host_key, host.to_string())?;
            let p: u16 = r.parse(section, port_key, port)?;
            format!("{h}:{p}")
                .parse()
                .or_else(|_| format!("[{h}]:{p}").parse())
                .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                    section,
                    key: host_key,
                    reason: e.to_string(),
                })
        };
        let data_dirs: Vec<PathBuf> = r
            .get("glance_store", "filesystem_store_datadirs")
            .unwrap_or_else(|| "var/data".into())
            .split(',')
            .map(|s| PathBuf::from(s.trim().split(':').next().unwrap_or_default()))
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let access = std::env::var("GLINT_S3_ACCESS_KEY")
            .ok()
            .or_else(|| r.get("glint", "s3_access_key"));
        let secret = std::env::var("GLINT_S3_SECRET_KEY")
            .ok()
            .or_else(|| r.get("glint", "s3_secret_key"));
        let project = r
            .get("glint", "s3_bootstrap_project")
            .unwrap_or_else(|| "admin".into());
        Ok(Config {
            data_dirs,
            catalog_dir: r.parse("glint", "catalog_dir", PathBuf::from("var/catalog"))?,
            chunk_size: r.parse("glint", "chunk_size", glint_storage::DEFAULT_CHUNK_SIZE)?,
            glance_addr: addr("DEFAULT", "bind_host", "bind_port", "0.0.0.0", 9292)?,
            image_size_cap: r.parse("DEFAULT", "image_size_cap", 1u64 << 40)?,
            s3_addr: addr("glint", "s3_bind_host", "s3_bind_port", "0.0.0.0", 8080)?,
            s3_domain: r.get("glint", "s3_domain"),
            s3_region: r
                .get("glint", "s3_region")
                .unwrap_or_else(|| "us-east-1".into()),
            s3_bootstrap: access.zip(secret).map(|(a, s)| (a, s, project)),
            s3_max_put_size: r.parse("glint", "s3_max_put_size", 5u64 << 30)?,
        })
    }

    pub fn store_config(&self) -> glint_storage::StoreConfig {
        let mut c =
            glint_storage::StoreConfig::new(self.data_dirs.clone(), self.catalog_dir.clone());
        c.chunk_size = self.chunk_size;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shipped_config() {
        let c = Config::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/etc/glance-api.conf"
        )))
        .unwrap();
        assert_eq!(c.s3_addr.port(), 8080);
        assert_eq!(c.glance_addr.port(), 9292);
        assert_eq!(c.data_dirs, vec![PathBuf::from("var/data")]);
        assert_eq!(c.s3_domain.as_deref(), Some("s3.localhost"));
    }

    #[test]
    fn bad_values_name_their_option() {
        let ini = Ini::load_from_str("[glint]\ns3_bind_port = eighty\n").unwrap();
        let e = Config::from_ini(ini).unwrap_err().to_string();
        assert!(e.contains("s3_bind_port"), "{e}");
    }
}

//! `ava-worker --config FILE`: the VMs a worker serves, in TOML.
//!
//! ```toml
//! [defaults]
//! weight = 1
//! priority = "normal"
//!
//! [[vm]]
//! name = "vm1"
//! region = "/dev/shm/vm1"
//! isolation_group = "team"     # optional: VMs sharing one executor
//! ```
//!
//! Each VM has a name (used in logs and metrics) and a region;
//! `isolation_group` puts VMs in one executor process (by default each VM
//! is its own group). The scheduling keys (`weight`, `priority`,
//! `memory_quota`, `max_launches_per_s`, `max_bytes_per_s`,
//! `max_device_share`; in `[defaults]` or per VM) are enforced by the
//! policy (`server::policy`). Errors name the file, line and column.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Scheduling settings (see `server::policy`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scheduling {
    /// Share of device time relative to other VMs.
    pub weight: Option<u32>,
    /// `"high"`, `"normal"` or `"low"`.
    pub priority: Option<Priority>,
    /// Device memory the VM may hold, e.g. `"256MiB"`.
    pub memory_quota: Option<String>,
    /// Kernel launches per second.
    pub max_launches_per_s: Option<u32>,
    /// Bytes moved per second, e.g. `"1GiB"`.
    pub max_bytes_per_s: Option<String>,
    /// Largest share of device time, 0 to 1.
    pub max_device_share: Option<f64>,
}

impl Scheduling {
    /// Whether any key is given.
    pub fn any(&self) -> bool {
        *self != Scheduling::default()
    }
}

/// A priority class.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Admitted before the others.
    High,
    /// The default.
    Normal,
    /// Admitted after the others.
    Low,
}

/// One VM.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Vm {
    /// Its name, in logs.
    pub name: String,
    /// Its region (the ivshmem backing file).
    pub region: PathBuf,
    /// The isolation group it shares an executor with (none: its own).
    pub isolation_group: Option<String>,
    /// Share of device time relative to other VMs.
    pub weight: Option<u32>,
    /// `"high"`, `"normal"` or `"low"`.
    pub priority: Option<Priority>,
    /// Device memory the VM may hold, e.g. `"256MiB"`.
    pub memory_quota: Option<String>,
    /// Kernel launches per second.
    pub max_launches_per_s: Option<u32>,
    /// Bytes moved per second, e.g. `"1GiB"`.
    pub max_bytes_per_s: Option<String>,
    /// Largest share of device time, 0 to 1.
    pub max_device_share: Option<f64>,
}

impl Vm {
    /// Its scheduling settings.
    pub fn scheduling(&self) -> Scheduling {
        Scheduling {
            weight: self.weight,
            priority: self.priority,
            memory_quota: self.memory_quota.clone(),
            max_launches_per_s: self.max_launches_per_s,
            max_bytes_per_s: self.max_bytes_per_s.clone(),
            max_device_share: self.max_device_share,
        }
    }
}

/// A size in bytes: a number with an optional unit, `B`, `KB`/`KiB`,
/// `MB`/`MiB`, `GB`/`GiB`, `TB`/`TiB` (e.g. `"256MiB"`, `"1.5GB"`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. \"256MiB\")"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        u => {
            return Err(format!(
                "unknown unit `{u}` in `{text}` (B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)"
            ));
        }
    };
    let v = n * mult;
    if !v.is_finite() || v >= u64::MAX as f64 {
        return Err(format!("`{text}` is too large"));
    }
    Ok(v.round() as u64)
}

/// A configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Settings every VM gets unless it says otherwise.
    #[serde(default)]
    pub defaults: Scheduling,
    /// The VMs.
    #[serde(default)]
    pub vm: Vec<Vm>,
}

/// A configuration that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 1,
            col: 1,
            message: e.to_string(),
        })?;
        Config::parse(&path.display().to_string(), &text)
    }

    /// Parses and checks `text` (named `file` in errors).
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        let err = |offset: usize, message: String| {
            let (line, col) = line_col(text, offset);
            ConfigError {
                file: file.to_string(),
                line,
                col,
                message,
            }
        };
        let config: Config = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            err(at, e.message().to_string())
        })?;
        // Where each VM's table starts, for errors about a whole VM.
        let starts: Vec<usize> = text.match_indices("[[vm]]").map(|(i, _)| i).collect();
        let at = |i: usize| starts.get(i).copied().unwrap_or(0);
        let mut names = HashMap::new();
        let mut regions = HashMap::new();
        for (i, vm) in config.vm.iter().enumerate() {
            if vm.name.is_empty() {
                return Err(err(at(i), "a VM's name is empty".into()));
            }
            if let Some(first) = names.insert(vm.name.clone(), i) {
                return Err(err(
                    at(i),
                    format!(
                        "VM `{}` is named twice (first as VM {})",
                        vm.name,
                        first + 1
                    ),
                ));
            }
            if let Some(first) = regions.insert(vm.region.clone(), i) {
                return Err(err(
                    at(i),
                    format!(
                        "region {} belongs to two VMs (`{}` and `{}`): a region is one VM's",
                        vm.region.display(),
                        config.vm[first].name,
                        vm.name
                    ),
                ));
            }
            // Where a key of this VM's table is, for errors about it.
            let key_at = |key: &str| {
                let from = at(i);
                text[from..].find(key).map_or(from, |k| from + k)
            };
            for (key, value) in [
                ("memory_quota", &vm.memory_quota),
                ("max_bytes_per_s", &vm.max_bytes_per_s),
            ] {
                if let Some(v) = value
                    && let Err(e) = parse_size(v)
                {
                    return Err(err(key_at(key), format!("VM `{}`: {key}: {e}", vm.name)));
                }
            }
            if vm.weight == Some(0) {
                return Err(err(
                    key_at("weight"),
                    format!("VM `{}`: weight must be at least 1", vm.name),
                ));
            }
            if let Some(share) = vm.max_device_share
                && !(0.0..=1.0).contains(&share)
            {
                return Err(err(
                    at(i),
                    format!(
                        "VM `{}`: max_device_share {share} is not between 0 and 1",
                        vm.name
                    ),
                ));
            }
        }
        let d = &config.defaults;
        let at_defaults = text.find("[defaults]").unwrap_or(0);
        for (key, value) in [
            ("memory_quota", &d.memory_quota),
            ("max_bytes_per_s", &d.max_bytes_per_s),
        ] {
            if let Some(v) = value
                && let Err(e) = parse_size(v)
            {
                let k = text[at_defaults..]
                    .find(key)
                    .map_or(at_defaults, |k| at_defaults + k);
                return Err(err(k, format!("defaults: {key}: {e}")));
            }
        }
        if d.weight == Some(0)
            || d.max_device_share
                .is_some_and(|s| !(0.0..=1.0).contains(&s))
        {
            return Err(err(
                at_defaults,
                "defaults: weight must be at least 1 and max_device_share between 0 and 1".into(),
            ));
        }
        Ok(config)
    }

    /// The scheduling settings of `vm`: its own keys, else the defaults'.
    /// (Sizes were checked when the file was read.)
    pub fn settings(&self, vm: &Vm) -> server::Settings {
        let d = &self.defaults;
        let size = |v: &Option<String>, dv: &Option<String>| {
            v.as_ref().or(dv.as_ref()).and_then(|s| parse_size(s).ok())
        };
        server::Settings {
            weight: u64::from(vm.weight.or(d.weight).unwrap_or(1)),
            priority: match vm.priority.or(d.priority).unwrap_or(Priority::Normal) {
                Priority::High => 0,
                Priority::Normal => 1,
                Priority::Low => 2,
            },
            memory_quota: size(&vm.memory_quota, &d.memory_quota),
            max_launches_per_s: vm
                .max_launches_per_s
                .or(d.max_launches_per_s)
                .map(u64::from),
            max_bytes_per_s: size(&vm.max_bytes_per_s, &d.max_bytes_per_s),
            max_device_share: vm.max_device_share.or(d.max_device_share),
        }
    }

    /// The isolation-group specifications (`NAME=PATH,PATH`) of the VMs that
    /// name one.
    pub fn groups(&self) -> Vec<String> {
        let mut by_group: Vec<(String, Vec<String>)> = Vec::new();
        for vm in &self.vm {
            if let Some(g) = &vm.isolation_group {
                let path = vm.region.display().to_string();
                match by_group.iter_mut().find(|(n, _)| n == g) {
                    Some((_, paths)) => paths.push(path),
                    None => by_group.push((g.clone(), vec![path])),
                }
            }
        }
        by_group
            .into_iter()
            .map(|(n, p)| format!("{n}={}", p.join(",")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[defaults]
weight = 1
priority = "normal"

[[vm]]
name = "vm1"
region = "/dev/shm/vm1"
weight = 2
memory_quota = "256MiB"
isolation_group = "team"

[[vm]]
name = "vm2"
region = "/dev/shm/vm2"
isolation_group = "team"

[[vm]]
name = "vm3"
region = "/dev/shm/vm3"
"#;

    #[test]
    fn a_good_file_gives_vms_and_groups() {
        let c = Config::parse("w.toml", GOOD).unwrap();
        assert_eq!(c.vm.len(), 3);
        assert_eq!(c.vm[0].weight, Some(2));
        assert_eq!(c.defaults.priority, Some(Priority::Normal));
        assert!(c.vm[0].scheduling().any() && !c.vm[2].scheduling().any());
        assert_eq!(c.groups(), ["team=/dev/shm/vm1,/dev/shm/vm2"]);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let bad = GOOD.replace("weight = 2", "weigth = 2");
        let e = Config::parse("w.toml", &bad).unwrap_err();
        assert_eq!((e.file.as_str(), e.line, e.col), ("w.toml", 9, 1), "{e}");
        assert!(e.message.contains("weigth"), "{e}");
        let e = Config::parse("w.toml", &GOOD.replace("\"normal\"", "\"urgent\"")).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        let e = Config::parse("w.toml", &GOOD.replace("vm2", "vm1")).unwrap_err();
        assert!(e.message.contains("named twice"), "{e}");
        assert_eq!(e.line, 13, "{e}");
        let e = Config::parse("w.toml", &GOOD.replace("/dev/shm/vm3", "/dev/shm/vm1")).unwrap_err();
        assert!(e.message.contains("belongs to two VMs"), "{e}");
        let e = Config::parse("w.toml", "[[vm]]\nname = \"a\"\n").unwrap_err();
        assert!(e.message.contains("region"), "{e}");
        let e = Config::parse(
            "w.toml",
            "[[vm]]\nname = \"a\"\nregion = \"/r\"\nmax_device_share = 2.0\n",
        )
        .unwrap_err();
        assert!(e.message.contains("between 0 and 1"), "{e}");
        let e = Config::parse("w.toml", &GOOD.replace("256MiB", "256 parsecs")).unwrap_err();
        assert_eq!(e.line, 10, "{e}");
        assert!(e.message.contains("unknown unit"), "{e}");
    }

    #[test]
    fn settings_take_the_defaults_and_sizes_have_units() {
        let c = Config::parse(
            "w.toml",
            &GOOD.replace("weight = 1", "weight = 3\nmax_launches_per_s = 9"),
        )
        .unwrap();
        let s = c.settings(&c.vm[0]);
        assert_eq!(
            (s.weight, s.priority, s.max_launches_per_s),
            (2, 1, Some(9))
        );
        assert_eq!(s.memory_quota, Some(256 << 20));
        assert_eq!(c.settings(&c.vm[1]).weight, 3);
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("GiB").is_err() && parse_size("-1").is_err());
    }
}

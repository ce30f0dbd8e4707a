//! The training schedule every trainer's section holds as its own `[section.train]` table: seed, batch,
//! optimizer and step counts. One type, so the four trainers read, check and run it the same way.
//!
//! Configs, manifests and checkpoints written before the table existed kept these keys flat in the section
//! (`encoder.steps`); [`lift_schedule_keys`] moves them into the table, so old files, old `--set` keys
//! and the committed demo models still load.

use serde::{Deserialize, Serialize};

use super::{ConfigError, at_least_one, invalid, positive};

/// The keys of a [`TrainSchedule`], which older files held flat in the trainer's section.
pub const SCHEDULE_KEYS: [&str; 7] =
    ["batch_size", "learning_rate", "clip_norm", "seed", "steps", "validate_every", "checkpoint_every"];

/// The sections that hold a `train` table.
pub const TRAINER_SECTIONS: [&str; 4] = ["encoder", "vse", "captioner", "decoder"];

/// How a model is trained: what the shared trainer skeleton (`train::trainer`) reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSchedule {
    /// Examples per batch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Gradients are clipped to this norm, per parameter tensor.
    pub clip_norm: f32,
    /// Seeds the weights, the batch order and any sampling.
    pub seed: u64,
    /// Optimizer steps to train for.
    pub steps: u64,
    /// Steps between validations.
    pub validate_every: u64,
    /// Steps between checkpoints (one is also written on Ctrl-C and at the end).
    pub checkpoint_every: u64,
}

impl Default for TrainSchedule {
    /// Only fills keys a partial table leaves out when a section is read on its own; `Config::load` fills
    /// them from the section's own defaults instead.
    fn default() -> Self {
        TrainSchedule {
            batch_size: 32,
            learning_rate: 1e-3,
            clip_norm: 5.0,
            seed: 42,
            steps: 1000,
            validate_every: 100,
            checkpoint_every: 250,
        }
    }
}

impl TrainSchedule {
    /// Checks the values, naming keys under `section` (e.g. `encoder` gives `encoder.train.steps`).
    pub fn validate(&self, section: &str, least_batch: usize) -> Result<(), ConfigError> {
        let key = |name: &str| format!("{section}.train.{name}");
        let (validate_every, checkpoint_every, batch_size) =
            (key("validate_every"), key("checkpoint_every"), key("batch_size"));
        at_least_one(&[
            (&validate_every, self.validate_every),
            (&checkpoint_every, self.checkpoint_every),
            (&batch_size, self.batch_size as u64),
        ])?;
        if self.batch_size < least_batch {
            return Err(invalid(
                &batch_size,
                format!("must be at least {least_batch}: the other pairs of a batch are the negatives"),
            ));
        }
        positive(&[(&key("learning_rate"), self.learning_rate), (&key("clip_norm"), f64::from(self.clip_norm))])
    }

    /// The settings that shape a run's batches and weights: a resume must keep them.
    pub fn unchanged(&self, other: &TrainSchedule, section: &str) -> Vec<(String, bool)> {
        vec![
            (format!("{section}.train.batch_size"), self.batch_size == other.batch_size),
            (format!("{section}.train.seed"), self.seed == other.seed),
        ]
    }
}

/// The key an override of the older flat layout means: `encoder.steps` is `encoder.train.steps`.
pub fn lifted_key(key: &str) -> String {
    match key.split_once('.') {
        Some((section, name)) if TRAINER_SECTIONS.contains(&section) && SCHEDULE_KEYS.contains(&name) => {
            format!("{section}.train.{name}")
        }
        _ => key.to_string(),
    }
}

/// Moves schedule keys that sit flat in a trainer's section (the layout before `[section.train]`) into its
/// `train` table: in every trainer section of a whole config when `whole` is set, else in the one section
/// `table` is (a manifest's or checkpoint's `config`). A key given both ways is an error, named.
pub fn lift_schedule_keys(table: &mut toml::Table, whole: bool) -> Result<(), ConfigError> {
    let mut json = serde_json::to_value(&*table).expect("a TOML table is JSON");
    lift_json(&mut json, whole)?;
    *table = serde_json::from_value(json).expect("a TOML table lifted is still TOML");
    Ok(())
}

fn lift_json(value: &mut serde_json::Value, whole: bool) -> Result<(), ConfigError> {
    let Some(map) = value.as_object_mut() else {
        return Ok(());
    };
    if !whole {
        return lift_section(map, "this section");
    }
    for section in TRAINER_SECTIONS {
        if let Some(serde_json::Value::Object(inner)) = map.get_mut(section) {
            lift_section(inner, section)?;
        }
    }
    Ok(())
}

fn lift_section(section: &mut serde_json::Map<String, serde_json::Value>, name: &str) -> Result<(), ConfigError> {
    let flat: Vec<(String, serde_json::Value)> =
        SCHEDULE_KEYS.iter().filter_map(|key| section.remove(*key).map(|value| (key.to_string(), value))).collect();
    if flat.is_empty() {
        return Ok(());
    }
    let train = section.entry("train").or_insert_with(|| serde_json::Value::Object(Default::default()));
    let Some(train) = train.as_object_mut() else {
        return Err(ConfigError::Invalid { key: format!("{name}.train"), message: "must be a table".into() });
    };
    for (key, value) in flat {
        if train.contains_key(&key) {
            return Err(ConfigError::Invalid {
                key: format!("{name}.{key}"),
                message: format!("is given both as `{name}.{key}` and as `{name}.train.{key}`; keep the second"),
            });
        }
        train.insert(key, value);
    }
    Ok(())
}

/// Deserializes `T` from a JSON file's field after lifting flat schedule keys (`whole`: in every trainer
/// section of a whole config, else in the one section the field is).
fn lifted<'de, D, T>(deserializer: D, whole: bool) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    let mut value = serde_json::Value::deserialize(deserializer)?;
    lift_json(&mut value, whole).map_err(D::Error::custom)?;
    T::deserialize(value).map_err(D::Error::custom)
}

/// One trainer section of a manifest or checkpoint (`#[serde(deserialize_with = "...")]`), in either layout.
pub fn section_with_lifted_schedule<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    lifted(deserializer, false)
}

/// A whole config recorded in a manifest (the corpus's, the bias's), in either layout.
pub fn config_with_lifted_schedule<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    lifted(deserializer, true)
}

//! `storytool train-vse`: the visual-semantic embedding's training loop.
//!
//! Each epoch pairs every training image with one of its captions (a different one each epoch, drawn from
//! a generator seeded by the epoch), shuffles the pairs and cuts them into batches, so no batch holds two
//! captions of one image (they would be scored as each other's negatives). Adam with clipping, recall on
//! the validation images every `validate_every` steps, and the checkpoint, resume, Ctrl-C and NaN-guard
//! behaviour of [`super::run`].

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::run::{
    LossWindow, MANIFEST_FILE, Position, RunState, TrainError, TrainingTask, export_weights, store_error,
};
use super::trainer::{RunEnd, RunOptions, Trainer, train};
use crate::captions::Split;
use crate::config::{Config, TrainSchedule, VseConfig};
use crate::corpus::manifest::CreatedBy;
use crate::model::batch::PaddedBatch;
use crate::model::vse::{CaptionTensors, Vse, VseModelConfig};
use crate::progress::Progress;
use crate::retrieval::data::{VseData, VseImage};
use crate::retrieval::evaluate::retrieval_scores;
use crate::retrieval::metrics::RetrievalScores;
use crate::retrieval::trained::{FORMAT, TOKENIZER_FILE, VSE_FILE, VseManifest, WordVectorsInit};
use crate::util::atomic::write_json;
use crate::vectors::readers::{VectorFormat, open_vectors};

/// Word vectors to start the caption encoder's embeddings from.
#[derive(Debug, Clone)]
pub struct WordVectorsSource {
    pub path: PathBuf,
    pub format: VectorFormat,
    /// Word list of an `.npy` table.
    pub words: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct VseTrainRequest {
    pub features: Vec<PathBuf>,
    pub config: Config,
    pub word_vectors: Option<WordVectorsSource>,
    pub run: RunOptions,
}

#[derive(Debug, Clone)]
pub struct VseTrainReport {
    pub steps: u64,
    pub resumed_from: Option<u64>,
    pub train_loss: Option<f32>,
    pub valid: Option<RetrievalScores>,
    pub images: [usize; 3],
    pub word_vectors: Option<WordVectorsInit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VseState {
    #[serde(flatten)]
    position: Position,
    #[serde(deserialize_with = "crate::config::section_with_lifted_schedule")]
    vse: VseConfig,
    vocabulary_hash: String,
    cnn_hash: String,
    word_vectors: Option<WordVectorsInit>,
}

impl RunState for VseState {
    fn position(&mut self) -> &mut Position {
        &mut self.position
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VseMetricsLine {
    pub step: u64,
    pub train_loss: f32,
    pub pairs_per_second: f32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub valid: Option<RetrievalScores>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub valid_rsum: Option<f64>,
    pub elapsed_seconds: f32,
}

/// The batches of one epoch: (image index into `train`, caption index) pairs.
fn plan_vse_epoch(train: &[&VseImage], batch_size: usize, seed: u64, epoch: u64) -> Vec<Vec<(usize, usize)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut pairs: Vec<(usize, usize)> = train
        .iter()
        .enumerate()
        .filter(|(_, image)| !image.captions.is_empty())
        .map(|(index, image)| {
            (index, *(0..image.captions.len()).collect::<Vec<_>>().choose(&mut rng).expect("a caption"))
        })
        .collect();
    pairs.shuffle(&mut rng);
    pairs.chunks(batch_size).filter(|batch| batch.len() >= 2).map(<[_]>::to_vec).collect()
}

/// Trains (or resumes) a VSE on the features folders of `request`.
pub fn train_vse(request: &VseTrainRequest, progress: &dyn Progress) -> Result<VseTrainReport, TrainError> {
    train(request, progress)
}

/// The opened features, and the word vectors a fresh run starts its embeddings from.
pub struct VseTrainData {
    data: VseData,
    /// The vocabulary's rows of the word-vector file: word ids, their vectors, and what was matched.
    word_vectors: Option<(Vec<usize>, Vec<f32>, WordVectorsInit)>,
}

impl Trainer for VseTrainRequest {
    type Data = VseTrainData;
    type Model = Vse;
    type State = VseState;
    type Task<'a> = VseTask<'a>;
    type Report = VseTrainReport;

    fn options(&self) -> &RunOptions {
        &self.run
    }

    fn schedule(&self) -> &TrainSchedule {
        &self.config.vse.train
    }

    fn inputs(&self) -> Vec<&Path> {
        let mut inputs: Vec<&Path> = self.features.iter().map(PathBuf::as_path).collect();
        inputs.extend(
            self.word_vectors
                .iter()
                .flat_map(|source| [Some(source.path.as_path()), source.words.as_deref()])
                .flatten(),
        );
        inputs
    }

    fn open(&self, _progress: &dyn Progress) -> Result<VseTrainData, TrainError> {
        let config = &self.config.vse;
        let data = VseData::load(&self.features, config, None)?;
        let train = data.split(Split::Train).len();
        if train < 2 {
            return Err(TrainError::NoExamples(format!(
                "{train} training images (at least 2 are needed; {} images in all)",
                data.images.len()
            )));
        }
        // A resumed run has its trained embeddings in the checkpoint.
        let word_vectors = match &self.word_vectors {
            Some(source) if !self.run.resume => Some(read_word_vectors(source, &data, config.word_dim)?),
            _ => None,
        };
        Ok(VseTrainData { data, word_vectors })
    }

    fn init(&self, data: &VseTrainData, device: &Device) -> Result<(Vse, VseState), TrainError> {
        let config = &self.config.vse;
        let (data, word_vectors) = (&data.data, &data.word_vectors);
        let mut model =
            VseModelConfig::new(data.vocabulary.len(), config.word_dim, config.embed_dim, data.image_dim).init(device);
        if let Some((ids, rows, _)) = word_vectors {
            model = model.set_word_vectors(ids, rows);
        }
        let state = VseState {
            position: Position::default(),
            vse: config.clone(),
            vocabulary_hash: data.vocabulary.content_hash(),
            cnn_hash: data.cnn.blake3.clone(),
            word_vectors: word_vectors.as_ref().map(|(_, _, init)| init.clone()),
        };
        Ok((model, state))
    }

    fn unchanged(saved: &VseState, now: &VseState) -> Vec<(String, bool)> {
        let mut checks = vec![
            ("the caption vocabulary".to_string(), saved.vocabulary_hash == now.vocabulary_hash),
            ("the CNN of the features".into(), saved.cnn_hash == now.cnn_hash),
        ];
        checks.extend(saved.vse.unchanged(&now.vse));
        checks
    }

    fn task<'a>(&'a self, data: &'a VseTrainData, device: &Device) -> VseTask<'a> {
        VseTask {
            data: &data.data,
            train: data.data.split(Split::Train),
            valid: data.data.split(Split::Valid),
            config: &self.config.vse,
            device: device.clone(),
            plan: Vec::new(),
            train_loss: None,
            valid_scores: None,
        }
    }

    fn export(
        &self,
        data: &VseTrainData,
        model: &Vse,
        state: &VseState,
        task: &VseTask<'_>,
        end: RunEnd,
    ) -> Result<VseTrainReport, TrainError> {
        let (train_loss, valid) = (task.train_loss, task.valid_scores);
        export_vse(self, &data.data, model, state, end.steps, train_loss, valid)?;
        Ok(VseTrainReport {
            steps: end.steps,
            resumed_from: end.resumed_from,
            train_loss,
            valid,
            images: [task.train.len(), task.valid.len(), data.data.split(Split::Test).len()],
            word_vectors: state.word_vectors.clone(),
        })
    }
}

/// The VSE's loss for the shared loop.
pub struct VseTask<'a> {
    data: &'a VseData,
    train: Vec<&'a VseImage>,
    valid: Vec<&'a VseImage>,
    config: &'a VseConfig,
    device: Device,
    plan: Vec<Vec<(usize, usize)>>,
    train_loss: Option<f32>,
    valid_scores: Option<RetrievalScores>,
}

impl TrainingTask for VseTask<'_> {
    type Model = Vse;

    fn start_epoch(&mut self, epoch: u64) -> usize {
        self.plan = plan_vse_epoch(&self.train, self.config.train.batch_size, self.config.train.seed, epoch);
        self.plan.len()
    }

    fn loss(&self, model: &Vse, index: usize, _step: u64) -> (Tensor<1>, usize) {
        let batch = &self.plan[index];
        let features: Vec<f32> =
            batch.iter().flat_map(|&(image, _)| self.data.feature_row(self.train[image])).copied().collect();
        let images =
            Tensor::<2>::from_data(TensorData::new(features, [batch.len(), self.data.image_dim]), &self.device);
        let padded = PaddedBatch::new(
            batch.iter().map(|&(image, caption)| self.train[image].captions[caption].as_slice()),
            self.config.max_tokens,
        );
        let captions = CaptionTensors::new(&padded, self.config.embed_dim, &self.device);
        (model.loss(images, &captions, self.config.margin, self.config.max_violation), batch.len())
    }

    fn log(
        &mut self,
        model: &Vse,
        step: u64,
        window: &LossWindow,
        validate: bool,
        elapsed_seconds: f32,
    ) -> (String, String) {
        let train_loss = window.mean();
        self.train_loss = Some(train_loss);
        let valid = if validate { retrieval_scores(&model.valid(), self.data, &self.valid, self.config) } else { None };
        if valid.is_some() {
            self.valid_scores = valid;
        }
        let line = VseMetricsLine {
            step,
            train_loss,
            pairs_per_second: window.items_per_second(),
            valid,
            valid_rsum: valid.map(|scores| scores.rsum()),
            elapsed_seconds,
        };
        let message = format!(
            "loss {:.4} {:.0} pairs/s{}",
            line.train_loss,
            line.pairs_per_second,
            self.valid_scores.map(|scores| format!(" valid rsum {:.1}", scores.rsum())).unwrap_or_default()
        );
        (serde_json::to_string(&line).expect("metrics serialize"), message)
    }

    /// Recall summed over both directions, negated: higher recall is better.
    fn validation_score(&self) -> Option<f32> {
        self.valid_scores.map(|scores| -(scores.rsum() as f32))
    }
}

/// Rows of the word-vector file for the vocabulary's words.
fn read_word_vectors(
    source: &WordVectorsSource,
    data: &VseData,
    word_dim: usize,
) -> Result<(Vec<usize>, Vec<f32>, WordVectorsInit), TrainError> {
    let input_error = |message: String| TrainError::Input(message);
    let mut reader = open_vectors(&source.path, source.format, source.words.as_deref())?;
    if reader.dim() != word_dim {
        return Err(input_error(format!(
            "`{}` has {}-d vectors but `vse.word_dim` is {word_dim}\n\nhint: pass `--set vse.word_dim={}`",
            source.path.display(),
            reader.dim(),
            reader.dim()
        )));
    }
    let mut ids = Vec::new();
    let mut rows = Vec::new();
    let mut seen = vec![false; data.vocabulary.len()];
    let mut vector = Vec::new();
    while let Some(word) = reader.next_into(&mut vector)? {
        let word = word.to_lowercase();
        if !data.vocabulary.contains(&word) {
            continue;
        }
        let id = data.vocabulary.id(&word) as usize;
        if !seen[id] {
            seen[id] = true;
            ids.push(id);
            rows.extend_from_slice(&vector);
        }
    }
    let init = WordVectorsInit { path: source.path.display().to_string(), dim: word_dim, matched: ids.len() };
    Ok((ids, rows, init))
}

fn export_vse(
    request: &VseTrainRequest,
    data: &VseData,
    model: &Vse,
    state: &VseState,
    steps: u64,
    train_loss: Option<f32>,
    valid: Option<RetrievalScores>,
) -> Result<(), TrainError> {
    let out = &request.run.out;
    export_weights(model, &out.join(VSE_FILE), None, false)?;
    data.vocabulary.save(&out.join(TOKENIZER_FILE)).map_err(|error| store_error(out, error))?;
    let manifest = VseManifest {
        format: FORMAT.into(),
        created_by: CreatedBy::now(request.run.command.clone()),
        features: data.inputs.clone(),
        cnn: data.cnn.clone(),
        image_size: data.image_size,
        image_dim: data.image_dim,
        vocabulary_size: data.vocabulary.len(),
        vocabulary_hash: data.vocabulary.content_hash(),
        word_vectors: state.word_vectors.clone(),
        steps,
        final_train_loss: train_loss,
        final_valid_rsum: valid.map(|scores| scores.rsum()),
        config: request.config.vse.clone(),
    };
    write_json(&out.join(MANIFEST_FILE), &manifest)?;
    Ok(())
}

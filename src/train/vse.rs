//! `storytool train-vse`: the visual-semantic embedding's training loop.
//!
//! Each epoch pairs every training image with one of its captions (a different one each epoch, drawn from
//! a generator seeded by the epoch), shuffles the pairs and cuts them into batches, so no batch holds two
//! captions of one image (they would be scored as each other's negatives). Adam with clipping, recall on
//! the validation images every `validate_every` steps, and the checkpoint, resume, Ctrl-C and NaN-guard
//! behaviour of [`super::run`].

use std::path::{Path, PathBuf};

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::AdamConfig;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::run::{
    LossWindow, MANIFEST_FILE, Position, RunState, Schedule, TrainError, TrainingTask, export_weights,
    require_unchanged, resume, store_error, train_steps,
};
use super::run_dir::RunDir;
use super::vse_data::{VseData, VseImage};
use crate::captions::Split;
use crate::config::{Config, VseConfig};
use crate::corpus::manifest::CreatedBy;
use crate::model::batch::PaddedBatch;
use crate::model::vse::{CaptionTensors, Vse, VseModelConfig};
use crate::progress::Progress;
use crate::retrieval::embed::{embed_captions, embed_images};
use crate::retrieval::metrics::{RetrievalScores, evaluate_retrieval};
use crate::retrieval::trained::{FORMAT, TOKENIZER_FILE, VSE_FILE, VseManifest, WordVectorsInit};
use crate::util::atomic::write_json;
use crate::util::cancel::CancelFlag;
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
    pub out: PathBuf,
    pub resume: bool,
    pub force: bool,
    pub config: Config,
    pub word_vectors: Option<WordVectorsSource>,
    pub command: Vec<String>,
    pub cancel: CancelFlag,
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
struct VseState {
    #[serde(flatten)]
    position: Position,
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
    let config = &request.config.vse;
    let mut inputs: Vec<&Path> = request.features.iter().map(PathBuf::as_path).collect();
    inputs.extend(
        request.word_vectors.iter().flat_map(|source| [Some(source.path.as_path()), source.words.as_deref()]).flatten(),
    );
    let run_dir = RunDir::check(&request.out, request.resume, request.force, &inputs)?;
    let data = VseData::load(&request.features, config, None).map_err(|error| TrainError::Input(error.to_string()))?;
    let train = data.split(Split::Train);
    let valid = data.split(Split::Valid);
    if train.len() < 2 {
        return Err(TrainError::NoExamples(format!(
            "{} training images (at least 2 are needed; {} images in all)",
            train.len(),
            data.images.len()
        )));
    }

    let device = Device::flex().autodiff();
    device.seed(config.seed);
    let mut model =
        VseModelConfig::new(data.vocabulary.len(), config.word_dim, config.embed_dim, data.image_dim).init(&device);
    let mut word_vectors = None;
    if let Some(source) = &request.word_vectors
        && !request.resume
    {
        let (ids, rows, init) = read_word_vectors(source, &data, config.word_dim)?;
        model = model.set_word_vectors(&ids, &rows);
        word_vectors = Some(init);
    }
    let run = run_dir.begin()?;
    let mut optimizer =
        AdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Norm(config.clip_norm))).init();
    let mut state = VseState {
        position: Position::default(),
        vse: config.clone(),
        vocabulary_hash: data.vocabulary.content_hash(),
        cnn_hash: data.cnn.blake3.clone(),
        word_vectors: word_vectors.clone(),
    };
    let mut resumed_from = None;
    if request.resume {
        (model, optimizer, state) =
            resume(&request.out, model, optimizer, |saved| check_same_settings(saved, &state, &request.out))?;
        resumed_from = Some(state.position.step);
    }

    let mut task = VseTask {
        data: &data,
        train: &train,
        valid: &valid,
        config,
        device: device.clone(),
        plan: Vec::new(),
        train_loss: None,
        valid_scores: None,
    };
    let schedule = Schedule {
        steps: config.steps,
        learning_rate: config.learning_rate,
        validate_every: config.validate_every,
        checkpoint_every: config.checkpoint_every,
    };
    let model = train_steps(
        &mut task,
        model,
        optimizer,
        &mut state,
        &schedule,
        &request.out,
        &request.cancel,
        progress,
        resumed_from,
    )?;
    let (last_train_loss, last_valid) = (task.train_loss, task.valid_scores);
    export_vse(request, &data, &model, &state, last_train_loss, last_valid)?;
    run.finish()?;
    Ok(VseTrainReport {
        steps: state.position.step,
        resumed_from,
        train_loss: last_train_loss,
        valid: last_valid,
        images: [train.len(), valid.len(), data.split(Split::Test).len()],
        word_vectors: state.word_vectors.clone(),
    })
}

/// The VSE's loss for the shared loop.
struct VseTask<'a> {
    data: &'a VseData,
    train: &'a [&'a VseImage],
    valid: &'a [&'a VseImage],
    config: &'a VseConfig,
    device: Device,
    plan: Vec<Vec<(usize, usize)>>,
    train_loss: Option<f32>,
    valid_scores: Option<RetrievalScores>,
}

impl TrainingTask for VseTask<'_> {
    type Model = Vse;

    fn start_epoch(&mut self, epoch: u64) -> usize {
        self.plan = plan_vse_epoch(self.train, self.config.batch_size, self.config.seed, epoch);
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
        let valid = if validate { retrieval_scores(&model.valid(), self.data, self.valid, self.config) } else { None };
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

/// Recall of `images` (every caption of theirs is a query and a target); `None` without images.
pub fn retrieval_scores(
    model: &Vse,
    data: &VseData,
    images: &[&VseImage],
    config: &VseConfig,
) -> Option<RetrievalScores> {
    if images.is_empty() {
        return None;
    }
    let device = Device::flex();
    let features: Vec<f32> = images.iter().flat_map(|image| data.feature_row(image)).copied().collect();
    let image_vectors = embed_images(model, &features, data.image_dim, &device);
    let mut captions = Vec::new();
    let mut caption_image = Vec::new();
    for (index, image) in images.iter().enumerate() {
        for caption in &image.captions {
            captions.push(caption.clone());
            caption_image.push(index);
        }
    }
    let caption_vectors = embed_captions(model, &captions, config.max_tokens, &device);
    Some(evaluate_retrieval(&image_vectors, &caption_vectors, &caption_image, config.embed_dim))
}

/// Rows of the word-vector file for the vocabulary's words.
fn read_word_vectors(
    source: &WordVectorsSource,
    data: &VseData,
    word_dim: usize,
) -> Result<(Vec<usize>, Vec<f32>, WordVectorsInit), TrainError> {
    let input_error = |message: String| TrainError::Input(message);
    let mut reader = open_vectors(&source.path, source.format, source.words.as_deref())
        .map_err(|error| input_error(error.to_string()))?;
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
    while let Some(word) = reader.next_into(&mut vector).map_err(|error| input_error(error.to_string()))? {
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

fn check_same_settings(saved: &VseState, now: &VseState, dir: &std::path::Path) -> Result<(), TrainError> {
    let (a, b) = (&saved.vse, &now.vse);
    require_unchanged(
        dir,
        &[
            ("the caption vocabulary", saved.vocabulary_hash == now.vocabulary_hash),
            ("the CNN of the features", saved.cnn_hash == now.cnn_hash),
            ("vse.word_dim", a.word_dim == b.word_dim),
            ("vse.embed_dim", a.embed_dim == b.embed_dim),
            ("vse.max_tokens", a.max_tokens == b.max_tokens),
            ("vse.batch_size", a.batch_size == b.batch_size),
            ("vse.seed", a.seed == b.seed),
            ("vse.valid_percent", a.valid_percent == b.valid_percent),
            ("vse.test_percent", a.test_percent == b.test_percent),
        ],
    )
}

fn export_vse(
    request: &VseTrainRequest,
    data: &VseData,
    model: &Vse,
    state: &VseState,
    train_loss: Option<f32>,
    valid: Option<RetrievalScores>,
) -> Result<(), TrainError> {
    export_weights(model, &request.out.join(VSE_FILE), None, false)?;
    data.vocabulary.save(&request.out.join(TOKENIZER_FILE)).map_err(|error| store_error(&request.out, error))?;
    let manifest = VseManifest {
        format: FORMAT.into(),
        created_by: CreatedBy::now(request.command.clone()),
        features: data.inputs.clone(),
        cnn: data.cnn.clone(),
        image_size: data.image_size,
        image_dim: data.image_dim,
        vocabulary_size: data.vocabulary.len(),
        vocabulary_hash: data.vocabulary.content_hash(),
        word_vectors: state.word_vectors.clone(),
        steps: state.position.step,
        final_train_loss: train_loss,
        final_valid_rsum: valid.map(|scores| scores.rsum()),
        config: request.config.vse.clone(),
    };
    write_json(&request.out.join(MANIFEST_FILE), &manifest)?;
    Ok(())
}

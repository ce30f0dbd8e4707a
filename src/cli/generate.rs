//! `storytool generate`: a story from a photo (or caption text) in a genre.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use storytool::story::generate::{Generator, ModelPaths, StoryInput, StoryOptions};
use storytool::story::writer::StoryEvent;
use storytool::util::cancel::CancelFlag;
use storytool::vision::load_image;

use super::device_args::DeviceArgs;
use super::live_text::LiveText;
use super::{ConfigArgs, cnn_weights};

/// Write a short story about a photo in a genre: the photo's nearest captions (VSE caption bank), their
/// skip-thought vectors shifted from "caption" toward the genre (`mean - caption bias + genre bias`), and a
/// story decoded from the result by beam search. `--captioner` writes the captions instead of retrieving
/// them; `--text` uses caption sentences instead of a photo.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The photo (JPEG, PNG or WebP)
    #[arg(long, value_name = "FILE", required_unless_present = "text", conflicts_with = "text")]
    image: Option<PathBuf>,

    /// A caption to start from instead of a photo (repeatable: their vectors are averaged)
    #[arg(long, value_name = "TEXT")]
    text: Vec<String>,

    /// Genre(s), as in the bias folder (repeatable: one story each)
    #[arg(long, required = true)]
    genre: Vec<String>,

    /// Model folder with encoder/, decoder/, bias/, vse/ and caption-bank/
    #[arg(long, value_name = "DIR", default_value = "checkpoints/demo")]
    models: PathBuf,

    /// Captioner folder (`storytool train-captioner --out`): write the photo's captions instead of retrieving
    /// them (its finished beams are averaged); the VSE and caption bank are not used
    #[arg(long, value_name = "DIR", conflicts_with = "text")]
    captioner: Option<PathBuf>,

    /// A story decoder folder to use instead of the model folder's `decoder/` (e.g.
    /// `checkpoints/demo/decoder-gru`, the GRU decoder)
    #[arg(long, value_name = "DIR")]
    decoder: Option<PathBuf>,

    /// The pretrained language model a `kind = "lm"` decoder steers (default: $STORYTOOL_LM_WEIGHTS, then
    /// the file scripts/fetch-lm.sh fetches)
    #[arg(long, value_name = "GGUF")]
    lm: Option<PathBuf>,

    /// EfficientNet-Lite weights (default: $STORYTOOL_CNN_WEIGHTS or the file scripts/fetch-cnn.sh fetched)
    #[arg(long, value_name = "FILE")]
    cnn: Option<PathBuf>,

    /// Nearest captions to average (overrides `generate.k`)
    #[arg(short, long)]
    k: Option<usize>,

    /// Beam width (overrides `generate.beam`)
    #[arg(long)]
    beam: Option<usize>,

    /// Longest story in words (overrides `generate.max_words`)
    #[arg(long)]
    max_words: Option<usize>,

    /// Seed of the sampling noise (only used with `--temperature` above 0)
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Gumbel noise added to the beam's ranking: 0 is plain beam search; 0.5-1 varies stories by seed
    /// (overrides `generate.temperature`)
    #[arg(long)]
    temperature: Option<f32>,

    /// Classifier-free guidance of a language-model decoder toward the photo's vector and the genre: 0
    /// is off, 1-3 pushes harder (overrides `generate.guidance`)
    #[arg(long)]
    guidance: Option<f32>,

    /// Also print the captions the story came from
    #[arg(long)]
    show_captions: bool,

    /// Annotation files to read caption text from, if not where the bank's manifest says (repeatable)
    #[arg(long, value_name = "FILE")]
    annotations: Vec<PathBuf>,

    /// Print JSON
    #[arg(long)]
    json: bool,

    /// Show the story as it is written, word by word (on a terminal; elsewhere the finished story only)
    #[arg(long, conflicts_with = "json")]
    stream: bool,

    #[command(flatten)]
    config: ConfigArgs,

    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let config = args.config.resolve(&[
        ("generate.k", args.k.map(|v| v.to_string())),
        ("generate.beam", args.beam.map(|v| v.to_string())),
        ("generate.max_words", args.max_words.map(|v| v.to_string())),
        ("generate.guidance", args.guidance.map(|v| v.to_string())),
    ])?;
    if args.config.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    if args.temperature.is_some_and(|temperature| !(temperature >= 0.0 && temperature.is_finite())) {
        anyhow::bail!("--temperature must be 0 or more");
    }
    let input = match &args.image {
        Some(path) => StoryInput::Image(load_image(path).context("cannot read the photo")?),
        None => StoryInput::Captions(args.text.clone()),
    };
    let cnn = if args.image.is_some() { cnn_weights(args.cnn.clone())? } else { PathBuf::new() };
    let mut paths = ModelPaths::from_dir(&args.models, cnn);
    paths.captioner = args.captioner.clone();
    if let Some(lm) = &args.lm {
        paths.lm = Some(lm.clone());
    }
    if let Some(decoder) = &args.decoder {
        paths.decoder = decoder.clone();
    }
    let device = args.device.one(Some(&config), "generate")?;
    let generator = Generator::load(&paths, args.image.is_some(), &device)
        .with_context(|| format!("cannot load the models in `{}`", args.models.display()))?;
    let texts = match (generator.photos.retriever(), args.show_captions || args.json) {
        (Some(retriever), true) => Some(retriever.bank.texts(&args.annotations)),
        _ => None,
    };
    let mut live = if args.stream { LiveText::on_stdout() } else { None };
    let mut stories = Vec::new();
    for genre in &args.genre {
        let mut options = StoryOptions::new(genre, &config.generate);
        options.seed = args.seed;
        if let Some(temperature) = args.temperature {
            options.temperature = temperature;
        }
        let mut story = match &mut live {
            Some(live) => {
                if args.genre.len() > 1 {
                    println!("[{genre}]");
                }
                let mut watch = |event: StoryEvent<'_>| {
                    if let StoryEvent::Text(text) = event {
                        live.show(text);
                    }
                };
                let story = generator.generate_watched(&input, &options, &CancelFlag::new(), &mut watch)?;
                live.show(&story.story);
                live.finish();
                println!("\n");
                story
            }
            None => generator.generate(&input, &options)?,
        };
        if let Some((texts, _)) = &texts {
            for caption in &mut story.captions {
                caption.text = caption.id.as_ref().and_then(|id| texts.get(id).cloned());
            }
        }
        stories.push(story);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stories)?);
        return Ok(());
    }
    if args.show_captions
        && let Some(first) = stories.first()
    {
        let source = match (&args.image, &args.captioner) {
            (Some(_), Some(_)) => "from the captions written for the photo:",
            (Some(_), None) => "from the captions nearest the photo:",
            (None, _) => "from the captions:",
        };
        println!("{source}");
        for caption in first.captions.iter().take(5) {
            let text =
                caption.text.clone().or_else(|| caption.id.as_ref().map(|id| format!("[{id}]"))).unwrap_or_default();
            match caption.score {
                Some(score) => println!("  {score:.3}  {text}"),
                None => println!("  {text}"),
            }
        }
        if !first.keywords.is_empty() {
            println!("keywords: {}", first.keywords.join(", "));
        }
        println!();
    }
    for story in stories.iter().filter(|_| live.is_none()) {
        if args.genre.len() > 1 {
            println!("[{}]", story.genre);
        }
        println!("{}\n", story.story);
    }
    if let Some((_, unavailable)) = &texts
        && args.show_captions
        && !unavailable.is_empty()
    {
        eprintln!(
            "note: caption text not shown for sources not found ({}); pass `--annotations FILE`",
            unavailable.join(", ")
        );
    }
    Ok(())
}

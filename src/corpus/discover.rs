//! Finding the books: a catalogue CSV, or one folder per genre.
//!
//! Users arrive with one of two layouts. With a catalogue (`file,title,author,year,genres`, genres
//! `;`-separated, like `books.csv`), the catalogue is the list of books: its rows name files relative to the
//! books folder, and files it does not name are reported, not read. Without one, every `.txt` file under the
//! books folder is a book and the first folder of its path is its genre tag (`books/adventure/x.txt`,
//! Pix2Story's layout). Either way the result is sorted by path so that runs are reproducible.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::util::Cause;
use serde::{Deserialize, Serialize};
use walkdir::WalkDir;

/// One book to read.
#[derive(Debug, Clone, PartialEq)]
pub struct BookSource {
    /// Where to read it.
    pub path: PathBuf,
    /// Its path relative to the books folder, with `/` separators: the book's name in every report.
    pub file: String,
    pub title: Option<String>,
    pub author: Option<String>,
    pub year: Option<String>,
    /// Lower-case genre tags, sorted, without duplicates.
    pub tags: Vec<String>,
}

/// A file, or catalogue row, that did not become a book, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub file: String,
    pub reason: String,
}

/// The books found and what was passed over.
#[derive(Debug, Default)]
pub struct Discovery {
    pub books: Vec<BookSource>,
    pub skipped: Vec<Skipped>,
}

/// Why the books could not be listed at all.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("books folder `{0}` does not exist or is not a folder")]
    NoBooksFolder(PathBuf),
    #[error("cannot list `{path}`")]
    Walk {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("catalogue `{path}`")]
    Catalogue {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("catalogue `{path}` line {line}: {message}")]
    CatalogueRow { path: PathBuf, line: u64, message: String },
}

/// One folder of books and its catalogue (none: one folder per genre). `ingest` takes several into one
/// corpus, e.g. `books/` with `books.csv` and `library/books/` with `library/library.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Shelf {
    pub books_dir: PathBuf,
    pub catalogue: Option<PathBuf>,
}

/// The books of every shelf, named relative to `root`: the deepest folder the shelves share, so that a
/// corpus of one shelf names its books as before and every book of several is found at `root/file`.
#[derive(Debug)]
pub struct ShelvesFound {
    pub root: PathBuf,
    pub discovery: Discovery,
}

/// Lists the books of `shelves` (see [`discover`]), each named by its path from their common folder.
pub fn discover_shelves(shelves: &[Shelf]) -> Result<ShelvesFound, DiscoverError> {
    let mut found = Vec::with_capacity(shelves.len());
    for shelf in shelves {
        found.push(discover(&shelf.books_dir, shelf.catalogue.as_deref())?);
    }
    let dirs: Vec<&Path> = shelves.iter().map(|shelf| shelf.books_dir.as_path()).collect();
    let root = common_folder(&dirs)?;
    let mut discovery = Discovery::default();
    for (shelf, found) in shelves.iter().zip(found) {
        let prefix = relative_to(&shelf.books_dir, &root)?;
        let name = |file: String| if prefix.is_empty() { file } else { format!("{prefix}/{file}") };
        discovery.books.extend(found.books.into_iter().map(|book| BookSource { file: name(book.file), ..book }));
        discovery.skipped.extend(found.skipped.into_iter().map(|skip| Skipped { file: name(skip.file), ..skip }));
    }
    Ok(ShelvesFound { root, discovery })
}

/// The deepest folder holding every one of `dirs`: by their components as written when they share some
/// (so relative paths stay relative and a manifest names no machine's folders), else by their canonical
/// paths.
pub fn common_folder(dirs: &[&Path]) -> Result<PathBuf, DiscoverError> {
    let lexical = dirs
        .iter()
        .map(|dir| parts(dir))
        .reduce(|common, next| common.into_iter().zip(next).take_while(|(a, b)| a == b).map(|(a, _)| a).collect());
    let Some(common) = lexical else { return Ok(PathBuf::from(".")) };
    // The lexical prefix works when what is left of each folder goes down from it.
    let goes_down = dirs
        .iter()
        .all(|dir| parts(dir)[common.len()..].iter().all(|part| matches!(part, std::path::Component::Normal(_))));
    if goes_down && (!common.is_empty() || dirs.iter().all(|dir| dir.is_relative())) {
        let folder: PathBuf = common.iter().collect();
        return Ok(if folder.as_os_str().is_empty() { PathBuf::from(".") } else { folder });
    }
    let canonical = dirs.iter().map(|dir| canonical(dir)).collect::<Result<Vec<_>, _>>()?;
    let canonical: Vec<&Path> = canonical.iter().map(PathBuf::as_path).collect();
    common_folder(&canonical)
}

/// `dir` from `root` (a folder [`common_folder`] returned for it), `/`-separated; empty for `root` itself.
fn relative_to(dir: &Path, root: &Path) -> Result<String, DiscoverError> {
    let strip = |dir: &Path| -> Option<String> {
        let dir: PathBuf = parts(dir).into_iter().collect();
        let root: PathBuf = parts(root).into_iter().collect();
        dir.strip_prefix(&root).ok().map(relative_name)
    };
    match strip(dir) {
        Some(name) => Ok(name),
        None => Ok(strip(&canonical(dir)?).unwrap_or_default()),
    }
}

/// A path's components without `.`: how two spellings of a folder are compared.
fn parts(dir: &Path) -> Vec<std::path::Component<'_>> {
    dir.components().filter(|part| !matches!(part, std::path::Component::CurDir)).collect()
}

fn canonical(dir: &Path) -> Result<PathBuf, DiscoverError> {
    dir.canonicalize().map_err(|error| DiscoverError::Walk { path: dir.to_path_buf(), source: error.into() })
}

/// Lists the books under `books_dir`, through `catalogue` when given.
pub fn discover(books_dir: &Path, catalogue: Option<&Path>) -> Result<Discovery, DiscoverError> {
    if !books_dir.is_dir() {
        return Err(DiscoverError::NoBooksFolder(books_dir.to_path_buf()));
    }
    let (files, unreadable) = list_files(books_dir, catalogue)?;
    let mut discovery = match catalogue {
        Some(catalogue) => from_catalogue(books_dir, catalogue, files)?,
        None => from_folders(books_dir, files),
    };
    discovery.skipped.extend(unreadable);
    Ok(discovery)
}

/// Every regular file under `books_dir` by its relative name, except the catalogue itself, and what could
/// not be listed below it (a broken link, a link loop, an unreadable folder, a FIFO or device): those are
/// reported and the rest is read, since one bad entry should not stop the ingestion of thousands of books.
fn list_files(
    books_dir: &Path,
    catalogue: Option<&Path>,
) -> Result<(BTreeMap<String, PathBuf>, Vec<Skipped>), DiscoverError> {
    let catalogue = catalogue.and_then(|path| path.canonicalize().ok());
    let mut files = BTreeMap::new();
    let mut skipped = Vec::new();
    let name_of = |path: &Path| relative_name(path.strip_prefix(books_dir).unwrap_or(path));
    for entry in WalkDir::new(books_dir).follow_links(true).sort_by_file_name() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) if error.depth() > 0 => {
                let file = error.path().map(name_of).unwrap_or_default();
                let reason = if error.loop_ancestor().is_some() {
                    "a link loop".to_string()
                } else if error.io_error().is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) {
                    "a broken link".to_string()
                } else {
                    format!("cannot be read: {}", error.io_error().map_or(error.to_string(), ToString::to_string))
                };
                skipped.push(Skipped { file, reason });
                continue;
            }
            Err(error) => {
                return Err(DiscoverError::Walk {
                    path: error.path().unwrap_or(books_dir).to_path_buf(),
                    source: error.into(),
                });
            }
        };
        if entry.file_type().is_dir() {
            continue;
        }
        if !entry.file_type().is_file() {
            skipped.push(Skipped {
                file: name_of(entry.path()),
                reason: "not a regular file (a FIFO, socket or device)".into(),
            });
            continue;
        }
        if catalogue.is_some() && entry.path().canonicalize().ok() == catalogue {
            continue;
        }
        files.insert(name_of(entry.path()), entry.path().to_path_buf());
    }
    Ok((files, skipped))
}

/// Whether a relative name from a listing (a catalogue row, an annotation file) stays inside the folder it
/// is relative to: not absolute, and no `..` part. A user's catalogue must not make `ingest` read
/// `/etc/passwd` into a vocabulary.
pub fn stays_inside(name: &str) -> bool {
    let path = Path::new(name);
    path.components().all(|part| matches!(part, std::path::Component::Normal(_) | std::path::Component::CurDir))
}

fn relative_name(path: &Path) -> String {
    path.components().map(|part| part.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

fn is_txt(name: &str) -> bool {
    Path::new(name).extension().is_some_and(|extension| extension.eq_ignore_ascii_case("txt"))
}

fn from_folders(books_dir: &Path, files: BTreeMap<String, PathBuf>) -> Discovery {
    let mut discovery = Discovery::default();
    for (file, path) in files {
        if !is_txt(&file) {
            discovery.skipped.push(Skipped { file, reason: "not a .txt file".into() });
            continue;
        }
        let relative = path.strip_prefix(books_dir).unwrap_or(&path);
        let tags = match relative.parent().and_then(|parent| parent.components().next()) {
            Some(folder) => vec![normalise_tag(&folder.as_os_str().to_string_lossy())],
            None => Vec::new(),
        };
        discovery.books.push(BookSource { path, file, title: None, author: None, year: None, tags });
    }
    discovery
}

/// One catalogue row; columns other than these (such as `source`) are ignored.
#[derive(Debug, Deserialize)]
struct CatalogueRow {
    file: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    year: Option<String>,
    #[serde(default)]
    genres: Option<String>,
}

fn from_catalogue(
    books_dir: &Path,
    catalogue: &Path,
    mut files: BTreeMap<String, PathBuf>,
) -> Result<Discovery, DiscoverError> {
    let catalogue_error = |source: Cause| DiscoverError::Catalogue { path: catalogue.to_path_buf(), source };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(catalogue)
        .map_err(|error| catalogue_error(error.into()))?;
    let headers = reader.headers().map_err(|error| catalogue_error(error.into()))?.clone();
    if !headers.iter().any(|header| header == "file") {
        return Err(catalogue_error(Cause::from(format!(
            "no `file` column; expected a header like `file,title,author,year,genres`, found `{}`",
            headers.iter().collect::<Vec<_>>().join(",")
        ))));
    }
    let mut discovery = Discovery::default();
    let mut seen_on_line: HashMap<String, u64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        let row_error = |error: csv::Error| {
            let line = error.position().map_or(0, |position| position.line());
            DiscoverError::CatalogueRow { path: catalogue.to_path_buf(), line, message: csv_message(&error) }
        };
        if !reader.read_record(&mut record).map_err(row_error)? {
            break;
        }
        let line = record.position().map_or(0, |position| position.line());
        let row: CatalogueRow = record.deserialize(Some(&headers)).map_err(|error| DiscoverError::CatalogueRow {
            path: catalogue.to_path_buf(),
            line,
            message: csv_message(&error),
        })?;
        let file = row.file.trim().replace('\\', "/");
        if file.is_empty() {
            return Err(DiscoverError::CatalogueRow {
                path: catalogue.to_path_buf(),
                line,
                message: "the `file` column is empty".into(),
            });
        }
        if let Some(first) = seen_on_line.insert(file.clone(), line) {
            return Err(DiscoverError::CatalogueRow {
                path: catalogue.to_path_buf(),
                line,
                message: format!("`{file}` is already listed on line {first}"),
            });
        }
        if !stays_inside(&file) {
            discovery.skipped.push(Skipped {
                file,
                reason: format!("catalogue row (line {line}) names a path outside the books folder"),
            });
            continue;
        }
        let path = match files.remove(&file) {
            Some(path) => path,
            None => {
                let path = books_dir.join(&file);
                if !path.is_file() {
                    discovery.skipped.push(Skipped {
                        file,
                        reason: format!("catalogue row (line {line}) names a file that does not exist"),
                    });
                    continue;
                }
                path
            }
        };
        let mut tags: Vec<String> =
            row.genres.as_deref().unwrap_or("").split(';').map(normalise_tag).filter(|tag| !tag.is_empty()).collect();
        tags.sort();
        tags.dedup();
        let non_empty = |value: Option<String>| value.filter(|value| !value.is_empty());
        discovery.books.push(BookSource {
            path,
            file,
            title: non_empty(row.title),
            author: non_empty(row.author),
            year: non_empty(row.year),
            tags,
        });
    }
    for file in files.into_keys() {
        discovery.skipped.push(Skipped { file, reason: "not listed in the catalogue".into() });
    }
    discovery.books.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(discovery)
}

fn csv_message(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("expected {expected_len} fields like the header, found {len}")
        }
        _ => error.to_string(),
    }
}

fn normalise_tag(tag: &str) -> String {
    tag.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, name: &str, text: &str) {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn folder_layout_tags_books_by_folder() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "adventure/b.txt", "x");
        write(root.path(), "Sci-Fi/a.TXT", "x");
        write(root.path(), "loose.txt", "x");
        write(root.path(), "notes.md", "x");
        let found = discover(root.path(), None).unwrap();
        let tags: Vec<(&str, Vec<String>)> =
            found.books.iter().map(|book| (book.file.as_str(), book.tags.clone())).collect();
        assert_eq!(
            tags,
            [
                ("Sci-Fi/a.TXT", vec!["sci-fi".to_string()]),
                ("adventure/b.txt", vec!["adventure".to_string()]),
                ("loose.txt", vec![])
            ]
        );
        assert_eq!(found.skipped, [Skipped { file: "notes.md".into(), reason: "not a .txt file".into() }]);
    }

    #[test]
    fn common_folders_stay_as_written() {
        let folder = |dirs: &[&str]| {
            let dirs: Vec<&Path> = dirs.iter().map(Path::new).collect();
            common_folder(&dirs).unwrap()
        };
        assert_eq!(folder(&["../data/books", "../data/library/books"]), Path::new("../data"));
        assert_eq!(folder(&["books", "./library/books"]), Path::new("."));
        assert_eq!(folder(&["/srv/a/books"]), Path::new("/srv/a/books"));
        assert_eq!(folder(&["/srv/a/books", "/srv/b"]), Path::new("/srv"));
    }

    #[test]
    fn shelves_name_books_from_the_folder_they_share() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "books/a.txt", "x");
        write(root.path(), "library/books/horror/b.txt", "x");
        write(root.path(), "library/books/notes.md", "x");
        let catalogue = root.path().join("books.csv");
        std::fs::write(&catalogue, "file,title,author,year,genres\na.txt,A,,,mystery\n").unwrap();
        let shelves = [
            Shelf { books_dir: root.path().join("books"), catalogue: Some(catalogue) },
            Shelf { books_dir: root.path().join("library/books"), catalogue: None },
        ];
        let found = discover_shelves(&shelves).unwrap();
        assert_eq!(found.root, root.path());
        let books: Vec<(&str, &[String])> =
            found.discovery.books.iter().map(|book| (book.file.as_str(), book.tags.as_slice())).collect();
        assert_eq!(
            books,
            [
                ("books/a.txt", &["mystery".to_string()][..]),
                ("library/books/horror/b.txt", &["horror".to_string()][..])
            ]
        );
        for book in &found.discovery.books {
            assert!(found.root.join(&book.file).is_file(), "{} is found from the root", book.file);
        }
        assert_eq!(found.discovery.skipped[0].file, "library/books/notes.md");
        // One shelf: named from its own folder, as always.
        let one = discover_shelves(&shelves[..1]).unwrap();
        assert_eq!(
            (one.root.as_path(), one.discovery.books[0].file.as_str()),
            (shelves[0].books_dir.as_path(), "a.txt")
        );
    }

    #[test]
    fn catalogue_layout_reads_rows_and_reports_gaps() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "a.txt", "x");
        write(root.path(), "extra.txt", "x");
        let catalogue = root.path().join("books.csv");
        std::fs::write(
            &catalogue,
            "file,title,author,year,genres,source\na.txt,A Title,Ann,1900,Mystery; thriller;mystery,x\nmissing.txt,M,,,,y\n",
        )
        .unwrap();
        let found = discover(root.path(), Some(&catalogue)).unwrap();
        assert_eq!(found.books.len(), 1);
        assert_eq!(found.books[0].tags, ["mystery", "thriller"]);
        assert_eq!(found.books[0].title.as_deref(), Some("A Title"));
        let reasons: Vec<&str> = found.skipped.iter().map(|skip| skip.file.as_str()).collect();
        assert_eq!(reasons, ["missing.txt", "extra.txt"]);
        assert!(found.skipped[0].reason.contains("line 3"));
    }

    #[test]
    fn bad_catalogues_name_file_and_line() {
        let root = tempfile::tempdir().unwrap();
        let catalogue = root.path().join("books.csv");
        std::fs::write(&catalogue, "file,genres\na.txt,x\nb.txt\n").unwrap();
        let error = discover(root.path(), Some(&catalogue)).unwrap_err().to_string();
        assert!(error.contains("line 3") && error.contains("expected 2 fields"), "{error}");

        std::fs::write(&catalogue, "\u{feff}file,genres\r\na.txt,Horror\r\n").unwrap();
        std::fs::write(root.path().join("a.txt"), "x").unwrap();
        let found = discover(root.path(), Some(&catalogue)).unwrap();
        assert_eq!(found.books[0].tags, ["horror"], "a spreadsheet's BOM and CRLF are fine");

        std::fs::write(&catalogue, "name,genres\na.txt,x\n").unwrap();
        let error = crate::util::error_chain(&discover(root.path(), Some(&catalogue)).unwrap_err());
        assert!(error.contains("no `file` column"), "{error}");

        std::fs::write(&catalogue, "file,genres\na.txt,x\na.txt,y\n").unwrap();
        let error = discover(root.path(), Some(&catalogue)).unwrap_err().to_string();
        assert!(error.contains("line 3") && error.contains("line 2"), "{error}");

        assert!(matches!(discover(&root.path().join("nope"), None), Err(DiscoverError::NoBooksFolder(_))));
    }
}

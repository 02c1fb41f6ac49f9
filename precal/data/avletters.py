"""Convert AVLetters (audio MFCC + lip video, letters A-Z) into a precal data set.

Input layout (see ``shared/data/SOURCES.md``)::

    src/Audio/mfcc/Clean/<Letter><rep>_<Speaker>.mfcc   HTK MFCC_E_D, 26 coefficients, 20 ms period
    src/lips_30x40.npz    frames (N, 30, 40) uint8, offsets (S + 1,), keys (S,) like "A1_Anya"

Like the UTD-MHAD converter, every input is read and checked before anything is written, and every
failure names the file, so a broken raw folder never turns into a silently wrong data set.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from precal.data.schema import DatasetSchema, ModalitySchema
from precal.data.storage import DataFormatError, MultimodalData, build_ragged, save_dataset
from precal.data.utd_mhad import read_frame_npz, reading

LETTERS: Tuple[str, ...] = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
TEST_REPETITION = 3
VAL_SEED = 0
LIPS_STEP = (30, 40)
NUM_COEFFS = 26

# HTK header: nSamples int32, sampPeriod int32 (100 ns units), sampSize int16 (bytes), parmKind int16.
_HTK_HEADER = struct.Struct(">iihh")
_HTK_PERIOD = 200_000  # 20 ms -> 50 frames/s
_HTK_MFCC_E_D = 6 | 0o100 | 0o400  # MFCC (6) + _E (64) + _D (256) = 326

SPLIT_PROTOCOL = (
    "By repetition: test = repetition 3 of every letter and speaker. Repetitions 1-2 are split into "
    "train and val, stratified by letter: for each letter A..Z in order, its n repetition-1/2 "
    "utterances (in sample order: repetition, then speaker) each get one draw of "
    "numpy.random.default_rng(0).random() (one generator shared across letters), and the "
    "round(n/5) (halves up) with the smallest draws go to val, i.e. 20% (4 of 20 per letter). "
    "All speakers appear in every split (speaker-dependent task); val is used only for model "
    "selection."
)

CITATION = (
    "I. Matthews, T. F. Cootes, J. A. Bangham, S. Cox, R. Harvey, \"Extraction of visual features "
    "for lipreading\", IEEE Transactions on Pattern Analysis and Machine Intelligence 24(2), 2002."
)

DESCRIPTION = (
    "AVLetters: 10 speakers say the letters A-Z three times (780 utterances). Audio: HTK MFCC_E_D "
    "(12 MFCC + log energy, and their deltas) at 50 frames/s. Lips: 60x80 grey lip-region frames at "
    "25 frames/s, 2x2 mean-pooled to 30x40 uint8. MFCC frames are about 1.95x the lip frames per "
    "utterance (1.35-1.98; M1_Verity, M2_Anya and X3_Nicola are the outliers)."
)

_STEM = re.compile(r"^([A-Z])([1-9])_([A-Za-z]+)$")


@dataclass(frozen=True, order=True)
class Utterance:
    """One utterance; ordering (letter, repetition, speaker) fixes the on-disk sample order."""

    letter: str
    repetition: int
    speaker: str

    @property
    def name(self) -> str:
        return f"{self.letter}{self.repetition}_{self.speaker}"


def convert_avletters(src: Path | str, out: Path | str) -> Path:
    """Read, check and write AVLetters as a precal data set in ``out``; returns ``out``.

    Raises :class:`DataFormatError` naming the offending file for any missing or malformed input,
    before anything is written.
    """
    src, out = Path(src), Path(out)
    mfcc_dir, lips_path = _layout(src)
    lips = read_frame_npz(lips_path, LIPS_STEP, np.uint8)
    utterances = _matched_utterances(mfcc_dir, lips_path, lips)
    audio = [read_htk_mfcc(mfcc_dir / f"{u.name}.mfcc") for u in utterances]
    frames = [lips[u.name] for u in utterances]
    data = _assemble(utterances, audio, frames)
    return save_dataset(data, out, inputs=[src])


# ----------------------------------------------------------------------------------------- inputs


def _layout(src: Path) -> Tuple[Path, Path]:
    if not src.is_dir():
        raise DataFormatError(f"AVLetters source folder {src} does not exist")
    mfcc_dir, lips_path = src / "Audio" / "mfcc" / "Clean", src / "lips_30x40.npz"
    if not mfcc_dir.is_dir():
        raise DataFormatError(f"AVLetters MFCC folder {mfcc_dir} is missing")
    if not lips_path.is_file():
        raise DataFormatError(f"AVLetters lip file {lips_path} is missing")
    return mfcc_dir, lips_path


def _parse_stem(stem: str, where: str) -> Utterance:
    m = _STEM.match(stem)
    if not m:
        raise DataFormatError(f"{where}: {stem!r} is not of the form <Letter><repetition>_<Speaker>")
    return Utterance(m.group(1), int(m.group(2)), m.group(3))


def read_htk_mfcc(path: Path) -> np.ndarray:
    """(T, 26) float16 from an HTK MFCC_E_D file, after checking header and length.

    float16 is accurate enough here: the worst error over all 780 files is 0.002 on coefficient 0
    (range +-7.8), at most 0.4% of any coefficient's standard deviation and 4.3e-4 of its largest
    magnitude, far below the frame-to-frame variation the models see. Halves the stored size.
    """
    if not path.is_file():
        raise DataFormatError(f"{path} is missing")
    with reading(path):
        raw = path.read_bytes()
    if len(raw) < _HTK_HEADER.size:
        raise DataFormatError(f"{path} is truncated: {len(raw)} bytes, shorter than the 12-byte HTK header")
    n, period, samp_size, kind = _HTK_HEADER.unpack_from(raw)
    _check_htk_header(path, n, period, samp_size, kind)
    expected = _HTK_HEADER.size + n * samp_size
    if len(raw) != expected:
        raise DataFormatError(f"{path}: header says {n} frames ({expected} bytes) but the file has {len(raw)} bytes (truncated?)")
    values = np.frombuffer(raw, dtype=">f4", offset=_HTK_HEADER.size).reshape(n, NUM_COEFFS)
    if not np.all(np.isfinite(values)):
        raise DataFormatError(f"{path} contains NaN or infinite values")
    return values.astype(np.float16)


def _check_htk_header(path: Path, n: int, period: int, samp_size: int, kind: int) -> None:
    if n <= 0:
        raise DataFormatError(f"{path}: HTK header gives {n} frames")
    if period != _HTK_PERIOD:
        raise DataFormatError(f"{path}: sample period {period * 1e-4:g} ms, expected 20 ms (50 frames/s)")
    if samp_size != 4 * NUM_COEFFS or kind != _HTK_MFCC_E_D:
        raise DataFormatError(
            f"{path}: HTK sampSize={samp_size}, parmKind={kind}; expected {4 * NUM_COEFFS} and "
            f"{_HTK_MFCC_E_D} (MFCC_E_D, {NUM_COEFFS} float32 coefficients)"
        )


def _matched_utterances(mfcc_dir: Path, lips_path: Path, lips: Dict[str, np.ndarray]) -> List[Utterance]:
    """All utterances, sorted; each needs an MFCC file and lip frames, or the missing one is named."""
    audio = {_parse_stem(p.stem, str(p)) for p in mfcc_dir.glob("*.mfcc")}
    video = {_parse_stem(k, str(lips_path)) for k in lips}
    utterances = sorted(audio | video)
    if not utterances:
        raise DataFormatError(f"{mfcc_dir} holds no *.mfcc files")
    for u in utterances:
        if u not in audio:
            raise DataFormatError(f"{mfcc_dir / (u.name + '.mfcc')} is missing (lip frames for {u.name} exist)")
        if u not in video:
            raise DataFormatError(f"{lips_path} has no lip frames for utterance {u.name!r}")
    return utterances


# ---------------------------------------------------------------------------------------- output


def split_indices(utterances: Sequence[Utterance]) -> Dict[str, np.ndarray]:
    """train/val/test indices per :data:`SPLIT_PROTOCOL`.

    Uses one uniform draw per candidate and an argsort rather than ``rng.choice``: ``random()`` on
    a seeded generator is the most stable part of numpy's Generator API, so a rebuild with a newer
    numpy is the most likely to reproduce the shipped split (which dataset.json also records).
    """
    rng = np.random.default_rng(VAL_SEED)
    test = [i for i, u in enumerate(utterances) if u.repetition == TEST_REPETITION]
    val: List[int] = []
    for letter in LETTERS:
        cand = np.array([i for i, u in enumerate(utterances)
                         if u.letter == letter and u.repetition != TEST_REPETITION], dtype=np.int64)
        if len(cand) == 0:
            continue
        draws = rng.random(len(cand))
        val.extend(cand[np.argsort(draws, kind="stable")[: (len(cand) + 2) // 5]].tolist())
    held = set(test) | set(val)
    train = [i for i in range(len(utterances)) if i not in held]
    return {name: np.array(sorted(idx), dtype=np.int64) for name, idx in
            (("train", train), ("val", val), ("test", test))}


def _schema(speakers: Sequence[str]) -> DatasetSchema:
    modalities = (
        ModalitySchema("audio", "time_series", (NUM_COEFFS,), 50.0, "",
                       "HTK MFCC_E_D: 12 MFCC + log energy, then their 13 deltas (dimensionless)"),
        ModalitySchema("lips", "frame_sequence", LIPS_STEP, 25.0, "grey level 0-255",
                       "grey lip-region frames, 60x80 2x2 mean-pooled to 30x40"),
    )
    extra = {"speakers": list(speakers), "split_protocol": SPLIT_PROTOCOL}
    return DatasetSchema("avletters", modalities, "classification", LETTERS, DESCRIPTION, CITATION, extra)


def _assemble(utterances: Sequence[Utterance], audio: Sequence[np.ndarray],
              frames: Sequence[np.ndarray]) -> MultimodalData:
    return MultimodalData(
        schema=_schema(sorted({u.speaker for u in utterances})),
        sample_ids=np.array([u.name for u in utterances]),
        labels=np.array([LETTERS.index(u.letter) for u in utterances], dtype=np.int64),
        modalities={
            "audio": build_ragged(audio, (NUM_COEFFS,), np.float16),
            "lips": build_ragged(frames, LIPS_STEP, np.uint8),
        },
        splits=split_indices(utterances),
        groups={"speaker": np.array([u.speaker for u in utterances]),
                "repetition": np.array([f"r{u.repetition}" for u in utterances])},
    )

"""The offline De-En corpora: gettext catalogs and the generated toy corpus."""

from labelreg_nlp.experiments.corpora import gettext_pairs, synthetic_pairs


def test_synthetic_corpus_is_parallel_and_deterministic():
    a, b = synthetic_pairs(50, seed=4), synthetic_pairs(50, seed=4)
    assert a == b and len(a) == 50
    assert all(de.endswith(".") and en.endswith(".") and de != en for de, en in a)


def test_gettext_pairs_reads_mo_files(tmp_path):
    """A catalog written in the test: cleaning rules and German/English order."""
    import struct

    messages = {"": "Content-Type: text/plain; charset=UTF-8\n", "Open the file": "Datei öffnen", "same": "same", "%s and %d and %x": "%s und %d und %x",
                "Save all changes now": "Alle Änderungen jetzt speichern"}
    keys = sorted(messages)
    ids = b"".join(k.encode() + b"\0" for k in keys)
    strs = b"".join(messages[k].encode() + b"\0" for k in keys)
    n, header = len(keys), 7 * 4
    key_start, val_start = header + 16 * n, header + 16 * n + len(ids)
    offsets, pos = [], 0
    for k in keys:
        offsets += [len(k.encode()), key_start + pos]
        pos += len(k.encode()) + 1
    voffsets, pos = [], 0
    for k in keys:
        voffsets += [len(messages[k].encode()), val_start + pos]
        pos += len(messages[k].encode()) + 1
    data = struct.pack("<7I", 0x950412DE, 0, n, header, header + 8 * n, 0, 0)
    data += struct.pack(f"<{2 * n}I", *offsets) + struct.pack(f"<{2 * n}I", *voffsets) + ids + strs
    (tmp_path / "x.mo").write_bytes(data)
    (tmp_path / "broken.mo").write_bytes(b"not a catalog")
    assert gettext_pairs(tmp_path) == [("Datei öffnen", "Open the file"),
                                       ("Alle Änderungen jetzt speichern", "Save all changes now")]

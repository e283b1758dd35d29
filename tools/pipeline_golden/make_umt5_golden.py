#!/usr/bin/env python3
"""Golden files for fastar's umT5 tokenizer and encoder (docs: pipeline-spec.md §4.5, §5.5, §8).

What it writes (tests/model/golden/umt5_tiny/, 2.1 MB, read by tests/model/test_umt5_{tokenizer,encoder}.cpp):
  tokenizer/            a tiny SentencePiece unigram model (600 pieces) trained here on a synthetic corpus this
                        script writes (umT5's settings: byte fallback, nmt_nfkc, pad 0 / eos 1 / unk 2, no BOS),
                        saved through T5Tokenizer(extra_ids=300).save_pretrained (spiece.model,
                        tokenizer_config.json, special_tokens_map.json, added_tokens.json) plus the converted
                        tokenizer.json, as a diffusers `tokenizer/` folder holds them
  tokenizer_cases.json  prompts, their Wan cleaning (ftfy.fix_text, html.unescape twice, strip, \\s+ -> ' ')
                        and the ids of transformers' AutoTokenizer (T5TokenizerFast) called as Wan calls it:
                        padding='max_length', truncation=True, max_length=text_len, add_special_tokens=True;
                        known_gap names an ftfy fix fastar's cleaning leaves out (src/fastar/model/prompt_clean.h)
  text_encoder/         UMT5EncoderModel with a small random config, HF names, F32 (save_pretrained:
                        config.json + model.safetensors)
  wan_text_encoder_bf16.safetensors   the same weights under the original Wan names (pipeline-spec.md §4.1), BF16
  encoder_io.safetensors  ids [2,160] I32, mask [2,160] I32, output_f32 [2,160,64] (HF last_hidden_state of the
                        F32 weights, every row), output_bf16_weights [2,160,64] (HF in F32 on the BF16-rounded
                        weights: what an engine holding BF16 weights and computing in F32 must give),
                        relative_buckets [2047] I32 (bucket of rel = key - query for rel in [-1023, 1023]);
                        metadata: text_len, prompt0, prompt1 (raw prompts), lengths (real tokens, </s> included)

Checks it makes before writing: the folder with and without tokenizer.json gives the same ids; an independent
float64 numpy forward of pipeline-spec.md §4.2 over the Wan-named weights equals HF (< 1e-5 relative; it stands in
for running Wan's own T5Encoder, which this script does not import, to prove the name map); HF's relative buckets
equal a float64 formula for every distance; the real-tokens-only forward equals the padded one on the real rows.

Run (CPU only, ~5 s; needs PyPI torch, transformers==4.49.0 (Wan's minimum pin), sentencepiece, protobuf, ftfy,
regex, safetensors, numpy; a venv keeps them apart from other tools' pins):
    python3 -m venv umt5-venv && umt5-venv/bin/pip install torch transformers==4.49.0 \\
        sentencepiece protobuf ftfy regex safetensors numpy
    umt5-venv/bin/python tools/pipeline_golden/make_umt5_golden.py
Training SentencePiece and random init are seeded; rerunning with the same package versions gives the same files.
"""
import argparse
import html
import json
import math
import os
import random
import shutil
import tempfile

import ftfy
import numpy as np
import regex
import sentencepiece as spm
import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, T5Tokenizer, UMT5Config, UMT5EncoderModel
from transformers.models.umt5.modeling_umt5 import UMT5Attention

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(ROOT, "tests", "model", "golden", "umt5_tiny")

EXTRA_IDS = 300  # umT5's <extra_id_N> count ([T5X] vocab.gin)
ENCODER_TEXT_LEN = 160
BUCKET_RANGE = 1023

# ---- a synthetic corpus (written here, so the fixture has no licence questions) ----------------------------------
ADJECTIVES = """red blue green golden silver dark bright misty quiet busy ancient modern tiny huge gentle wild snowy
sunny rainy foggy colorful shiny wooden glass rusty cozy lonely crowded peaceful cinematic dramatic soft warm cold
slow fast smooth detailed realistic vintage futuristic calm stormy""".split()
NOUNS = """cat dog fox panda bird horse whale robot car train city forest river mountain ocean beach street garden
kitchen market bridge castle village desert island lake sky cloud tree flower boat lantern camera dancer child
astronaut knight dragon butterfly waterfall meadow skyline tower road""".split()
VERBS = """runs walks flies swims dances jumps sleeps plays glows drifts spins rolls climbs floats rests waits
shines falls rises turns""".split()
PLACES = """in the rain|at sunset|at dawn|under the stars|through the snow|by the sea|in a small town|on a busy street|
in slow motion|near the old bridge|inside a glass house|over the hills|across the valley""".replace("\n", "").split("|")
STYLES = """close-up shot|wide angle|4K|high detail|film grain|soft lighting|tracking shot|aerial view|
shallow depth of field|35mm film|studio light|natural colors""".replace("\n", "").split("|")
ACCENTED = "café naïve résumé Über façade jalapeño crème brûlée São Paulo Zürich".split()
# Chinese scene phrases (fastar's own), so the model learns common CJK characters; rarer ones fall back to bytes.
CHINESE = """一只小猫在花园里玩耍|夕阳下的海边|城市的夜景|雪山和湖泊|一个孩子在公园里奔跑|古老的村庄|雨中的街道|
森林里的小路|天空中的白云|一辆红色的汽车|熊猫在吃竹子|金色的麦田|安静的图书馆|热闹的市场|高清画质|电影感|
慢动作镜头|明亮的灯光|小船在河上漂流|鸟儿在天空飞翔""".replace("\n", "").split("|")


def make_corpus(rng: random.Random, lines: int) -> str:
    out = []
    for i in range(lines):
        words = [rng.choice(["A", "The", "Two", "A small", "An old"]), rng.choice(ADJECTIVES), rng.choice(NOUNS),
                 rng.choice(VERBS), rng.choice(PLACES)]
        line = " ".join(words) + ", " + ", ".join(rng.sample(STYLES, 2)) + "."
        if i % 5 == 0:
            line += " " + " ".join(rng.sample(ACCENTED, 2))
        if i % 3 == 0:
            line += " " + "，".join(rng.sample(CHINESE, 3)) + "。"
        if i % 7 == 0:
            line += " %d frames, %dx%d, %d.%d seconds" % (rng.randint(1, 99), rng.choice([640, 832, 1280]),
                                                           rng.choice([480, 720]), rng.randint(1, 9), rng.randint(0, 9))
        out.append(line)
    return "\n".join(out) + "\n"


def train_tokenizer(work: str) -> str:
    corpus = os.path.join(work, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write(make_corpus(random.Random(1234), 4000))
    # pipeline-spec.md §5.5. Relative paths (run inside `work`) keep the temporary folder's name out of the
    # model's trainer_spec, and one thread without shuffling keeps training deterministic.
    cwd = os.getcwd()
    os.chdir(work)
    try:
        spm.SentencePieceTrainer.train(
            input="corpus.txt", model_prefix="tiny", vocab_size=600, model_type="unigram", byte_fallback=True,
            character_coverage=0.9995, normalization_rule_name="nmt_nfkc", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
            num_threads=1, minloglevel=2, shuffle_input_sentence=False)
    finally:
        os.chdir(cwd)
    return os.path.join(work, "tiny.model")


# ---- Wan's prompt cleaning (pipeline-spec.md §5.1) --------------------------------------------------------------------
def wan_clean(text: str) -> str:
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    text = text.strip()
    text = regex.sub(r"\s+", " ", text)
    return text.strip()


def long_prompt() -> str:
    rng = random.Random(99)
    return " ".join(rng.choice(ADJECTIVES + NOUNS + VERBS) for _ in range(700))


# (name, prompt, text_len, known_gap). known_gap names an ftfy fix fastar's cleaning does not reproduce
# (prompt_clean.h); GAP_IDS_EQUAL lists the gaps after which the tokenizer still gives Wan's ids.
PROMPTS = [
    ("ascii", "A red fox runs through the snowy forest at dawn.", 512, ""),
    ("ascii_punctuation", "Close-up shot, 4K, (cinematic) lighting; slow-motion: waves crash! 100% [sic] {x} a/b", 512, ""),
    ("cjk", "一只小猫在花园里玩耍，夕阳下的海边。", 512, ""),
    ("cjk_rare", "龘靐齉 and 𠀀 rare characters", 512, ""),
    ("mixed_scripts", "A panda 熊猫 eats bamboo 竹子 in the rain.", 512, ""),
    ("other_scripts", "こんにちは 안녕하세요 مرحبا Привет", 512, ""),
    ("emoji", "A dog 🐶 plays with a ball ⚽ 🎉🎉 👨‍👩‍👧 family", 512, ""),
    ("curly_quotes", "“Curly” ‘quotes’ and it’s fine „low‟ ‛rev‚ ʼmodifier", 512, ""),
    ("html_entities", "Tom &amp; Jerry &lt;3 &quot;cartoon&quot; &#39;classic&#39; &#x263A; &hearts; &euro;5", 512, ""),
    ("html_nested", "A &amp;amp; B &amp;amp;amp; C &amp;lt;tag&amp;gt;", 512, ""),
    ("html_with_angle", "x < y &amp; z &amp;amp; w", 512, ""),
    ("html_without_semicolon", "fish &amp chips &copy 2024 &notit &ampx &#65&#x42 &#1234567; &#0; &#128; &#xD800;", 512, ""),
    ("html_upper_case", "P&EACUTE;REZ and &NTILDE;o &nTILDE; &AMP; &Amp;", 512, ""),
    ("html_after_angle_line", "a < b\nc &AMP;amp; &EACUTE; d", 512, ""),
    ("tabs_newlines", "\tA cat\n\n sits  on\r\na mat.\t \x0b\x0c end ", 512, ""),
    ("empty", "", 512, ""),
    ("whitespace_only", "   \t\n \u3000 ", 512, ""),
    ("long_truncated", long_prompt(), 512, ""),
    ("literal_eos", "A cat</s> and a dog </s> and </s>bird", 512, ""),
    ("special_tokens", "<pad> <unk> hello <extra_id_0> world<extra_id_299> <extra_id_300> <s> <unk>x", 512, ""),
    ("fullwidth", "Ｆｕｌｌ width ＡＢＣ１２３　space ｶﾀｶﾅ", 512, ""),
    ("ligatures", "ﬁne ﬂowers ﬀ ﬃ Ĳssel ǆ", 512, ""),
    ("nfd_accents", "cafe\u0301 nai\u0308ve Zu\u0308rich", 512, "NFC normalization (ftfy)"),
    ("accents", "Café naïve résumé Über façade", 512, ""),
    ("controls_and_escapes", "bell\x07 and \x1b[31mred\x1b[0m text\u200b zero\ufeff width\u2028line\u2029para\x85x", 512, ""),
    ("c1_controls", "\x93quoted\x94 and \x80 \x81 \x9f", 512, ""),
    ("math_letters", "𝓕𝓪𝓷𝓬𝔂 𝐛𝐨𝐥𝐝 letters ①②", 512, ""),
    ("numbers", "1920x1080 at 24fps, 3.5 seconds, -7 °C, ½ cup", 512, ""),
    ("unicode_spaces", "a\u00a0b\u2003c\u3000d\u1680e\u202ff", 512, ""),
    ("truncate_short", "A red fox runs through the snowy forest at dawn, close-up shot, 4K.", 16, ""),
    ("exact_fit_short", "A red fox", 4, ""),
    ("mojibake", "doesnâ€™t work, schÃ¶n", 512, "mojibake repair (ftfy fix_encoding)"),
]


GAP_IDS_EQUAL = {"NFC normalization (ftfy)"}  # SentencePiece's nmt_nfkc normalizer composes, as NFC would


def tokenize_hf(tokenizer, text: str, text_len: int):
    enc = tokenizer([text], padding="max_length", truncation=True, max_length=text_len, add_special_tokens=True,
                    return_attention_mask=True)
    ids, mask = enc["input_ids"][0], enc["attention_mask"][0]
    length = int(sum(mask))
    assert len(ids) == text_len and all(m == 1 for m in mask[:length]) and all(i == 0 for i in ids[length:])
    assert ids[length - 1] == 1, "the last real token is </s>"
    return ids, length


def make_tokenizer_goldens(out: str, work: str):
    model_file = train_tokenizer(work)
    tok_dir = os.path.join(out, "tokenizer")
    shutil.rmtree(tok_dir, ignore_errors=True)
    T5Tokenizer(model_file, extra_ids=EXTRA_IDS).save_pretrained(tok_dir)
    slow_only = os.path.join(work, "slow_only")
    shutil.copytree(tok_dir, slow_only)
    fast = AutoTokenizer.from_pretrained(slow_only)  # converts spiece.model (pipeline-spec.md §5.3)
    assert type(fast).__name__ == "T5TokenizerFast", type(fast)
    fast_dir = os.path.join(work, "fast")
    fast.save_pretrained(fast_dir)
    shutil.copy(os.path.join(fast_dir, "tokenizer.json"), os.path.join(tok_dir, "tokenizer.json"))
    with_json = AutoTokenizer.from_pretrained(tok_dir)

    sp = spm.SentencePieceProcessor(model_file=model_file)
    cases = []
    for name, prompt, text_len, known_gap in PROMPTS:
        clean = wan_clean(prompt)
        ids, length = tokenize_hf(fast, clean, text_len)
        assert tokenize_hf(with_json, clean, text_len) == (ids, length), name
        cases.append({"name": name, "prompt": prompt, "clean": clean, "text_len": text_len, "length": length,
                      "ids": ids, "known_gap": known_gap,
                      "ids_equal_despite_gap": known_gap in GAP_IDS_EQUAL,
                      "sentencepiece_pieces": sp.encode(clean, out_type=str)[:40]})  # for reading failures only
    meta = {"generator": "tools/pipeline_golden/make_umt5_golden.py",
            "versions": {"transformers": __import__("transformers").__version__,
                         "tokenizers": __import__("tokenizers").__version__, "sentencepiece": spm.__version__,
                         "ftfy": ftfy.__version__},
            "piece_size": sp.get_piece_size(), "extra_ids": EXTRA_IDS, "hf_vocab_size": len(fast),
            "cases": cases}
    with open(os.path.join(out, "tokenizer_cases.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
    return fast, sp


def save_sorted_safetensors(tensors: dict, path: str, metadata: dict) -> None:
    """safetensors with a byte-stable header (the safetensors package orders metadata keys at random)."""
    dtypes = {torch.float32: "F32", torch.int32: "I32", torch.bfloat16: "BF16"}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        blob = t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))


# ---- the encoder ------------------------------------------------------------------------------------------------------
def wan_names(hf_state: dict, layers: int) -> dict:
    """HF UMT5EncoderModel names -> the original Wan T5Encoder names (pipeline-spec.md §4.1)."""
    out = {"token_embedding.weight": hf_state["shared.weight"], "norm.weight": hf_state["encoder.final_layer_norm.weight"]}
    for n in range(layers):
        p = "encoder.block.%d.layer." % n
        w = "blocks.%d." % n
        out[w + "norm1.weight"] = hf_state[p + "0.layer_norm.weight"]
        for x in "qkvo":
            out[w + "attn.%s.weight" % x] = hf_state[p + "0.SelfAttention.%s.weight" % x]
        out[w + "pos_embedding.embedding.weight"] = hf_state[p + "0.SelfAttention.relative_attention_bias.weight"]
        out[w + "norm2.weight"] = hf_state[p + "1.layer_norm.weight"]
        out[w + "ffn.gate.0.weight"] = hf_state[p + "1.DenseReluDense.wi_0.weight"]
        out[w + "ffn.fc1.weight"] = hf_state[p + "1.DenseReluDense.wi_1.weight"]
        out[w + "ffn.fc2.weight"] = hf_state[p + "1.DenseReluDense.wo.weight"]
    return out


def bucket_f64(rel: int, num_buckets: int = 32, max_distance: int = 128) -> int:
    half = num_buckets // 2
    base = half if rel > 0 else 0
    n = abs(rel)
    exact = half // 2
    if n < exact:
        return base + n
    return base + min(half - 1, exact + int(math.log(n / exact) / math.log(max_distance / exact) * (half - exact)))


def reference_forward_f64(w: dict, ids: np.ndarray, cfg: UMT5Config, buckets: np.ndarray) -> np.ndarray:
    """pipeline-spec.md §4.2 in float64 numpy over Wan names, on the real tokens only (ids [L])."""
    f = {k: v.float().numpy().astype(np.float64) for k, v in w.items()}
    L, H, D = len(ids), cfg.num_heads, cfg.d_kv

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + cfg.layer_norm_epsilon) * g

    rel = np.arange(L)[None, :] - np.arange(L)[:, None]  # key - query
    x = f["token_embedding.weight"][ids]
    for n in range(cfg.num_layers):
        p = "blocks.%d." % n
        h = rms(x, f[p + "norm1.weight"])
        q, k, v = (h @ f[p + "attn.%s.weight" % c].T for c in "qkv")
        q, k, v = (t.reshape(L, H, D).transpose(1, 0, 2) for t in (q, k, v))
        bias = f[p + "pos_embedding.embedding.weight"][buckets[rel + BUCKET_RANGE]]  # [L, L, H]
        s = q @ k.transpose(0, 2, 1) + bias.transpose(2, 0, 1)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = (s @ v).transpose(1, 0, 2).reshape(L, H * D)
        x = x + o @ f[p + "attn.o.weight"].T
        h = rms(x, f[p + "norm2.weight"])
        g = h @ f[p + "ffn.gate.0.weight"].T
        g = 0.5 * g * (1 + np.tanh(math.sqrt(2 / math.pi) * (g + 0.044715 * g ** 3)))
        x = x + (g * (h @ f[p + "ffn.fc1.weight"].T)) @ f[p + "ffn.fc2.weight"].T
    return rms(x, f["norm.weight"])


def make_encoder_goldens(out: str, tokenizer, hf_vocab: int):
    torch.manual_seed(0)
    vocab = (hf_vocab + 63) // 64 * 64  # like umT5's 256384 > 256300: rows no id reaches
    cfg = UMT5Config(vocab_size=vocab, d_model=64, d_kv=16, num_heads=4, d_ff=96, num_layers=3,
                     relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.0,
                     layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1,
                     decoder_start_token_id=0, tie_word_embeddings=False)
    model = UMT5EncoderModel(cfg).eval()
    with torch.no_grad():  # the default init leaves norms at 1 and the bias small; make every tensor matter
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif "relative_attention_bias" in name:
                p.copy_(torch.randn_like(p))
    enc_dir = os.path.join(out, "text_encoder")
    shutil.rmtree(enc_dir, ignore_errors=True)
    model.save_pretrained(enc_dir, safe_serialization=True)

    prompts = [long_prompt()[:300], "A red fox runs through the snowy forest at dawn, 熊猫 🐶."]
    enc = tokenizer([wan_clean(p) for p in prompts], padding="max_length", truncation=True,
                    max_length=ENCODER_TEXT_LEN, add_special_tokens=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    lengths = mask.sum(1).tolist()
    assert lengths[0] >= 100 and lengths[0] < ENCODER_TEXT_LEN and lengths[1] < 40, lengths

    rel = torch.arange(-BUCKET_RANGE, BUCKET_RANGE + 1)
    buckets = UMT5Attention(cfg, has_relative_attention_bias=True)._relative_position_bucket(rel)
    assert all(int(buckets[i]) == bucket_f64(int(r)) for i, r in enumerate(rel)), "fp32 bucket != float64 formula"

    with torch.no_grad():
        out_f32 = model(input_ids=ids, attention_mask=mask).last_hidden_state
        state = {k: v.clone() for k, v in model.state_dict().items()}
        bf16_state = {k: v.to(torch.bfloat16) for k, v in state.items()}
        model.load_state_dict({k: v.float() for k, v in bf16_state.items()})
        out_bf16w = model(input_ids=ids, attention_mask=mask).last_hidden_state
        # real tokens only (pipeline-spec.md §4.4) against the padded run
        for b, L in enumerate(lengths):
            alone = model(input_ids=ids[b:b + 1, :L], attention_mask=mask[b:b + 1, :L]).last_hidden_state[0]
            err = (alone - out_bf16w[b, :L]).abs().max() / out_bf16w[b, :L].abs().max()
            assert err < 1e-5, ("real-only vs padded", err)

    # independent float64 forward over the Wan names
    wan = wan_names(state, cfg.num_layers)
    for b, L in enumerate(lengths):
        ref = reference_forward_f64(wan, ids[b, :L].numpy(), cfg, buckets.numpy())
        err = np.abs(ref - out_f32[b, :L].numpy()).max() / np.abs(ref).max()
        print("float64 reference vs HF, prompt %d (L=%d): %.2e" % (b, L, err))
        assert err < 1e-5, err

    wan_bf16 = {k: v.to(torch.bfloat16).contiguous() for k, v in wan.items()}
    save_file(wan_bf16, os.path.join(out, "wan_text_encoder_bf16.safetensors"), metadata={"format": "pt"})
    save_sorted_safetensors({"ids": ids.to(torch.int32).contiguous(), "mask": mask.to(torch.int32).contiguous(),
               "output_f32": out_f32.contiguous(), "output_bf16_weights": out_bf16w.contiguous(),
               "relative_buckets": buckets.to(torch.int32).contiguous()},
              os.path.join(out, "encoder_io.safetensors"),
              metadata={"generator": "tools/pipeline_golden/make_umt5_golden.py", "text_len": str(ENCODER_TEXT_LEN),
                        "prompt0": prompts[0], "prompt1": prompts[1], "lengths": json.dumps(lengths)})
    rel_bf16 = (out_bf16w - out_f32).abs().max() / out_f32.abs().max()
    print("encoder: lengths %s, |bf16-weights - f32| / max = %.2e" % (lengths, rel_bf16))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        fast, sp = make_tokenizer_goldens(args.out, work)
        make_encoder_goldens(args.out, fast, len(fast))
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print("wrote %s (%.2f MB)" % (args.out, total / 1e6))


if __name__ == "__main__":
    main()

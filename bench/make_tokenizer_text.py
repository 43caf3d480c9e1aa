#!/usr/bin/env python3
"""Writes the benchmark text for bench/tokenizer_bench.cpp and bench/tokenizer_peer.py.

Deterministic (fixed seed, stdlib only): about 60% English prose, 25% source code (Python, C++,
JavaScript, JSON, shell) and 15% other scripts (CJK, Cyrillic, Arabic, Devanagari, Greek, Thai,
Korean, emoji...). Paragraphs are separated by a blank line; both benchmarks encode the text one
paragraph at a time (the paragraph keeps its trailing "\\n\\n"), so that the Llama-2 tokenizer,
which has no pre-tokenizer, sees paragraph-sized words as it would with real prompts.

Usage: make_tokenizer_text.py OUT [MEGABYTES=6]
"""
import random
import sys

SEED_TEXT = """
The committee met on a grey Tuesday morning to review the quarterly results, and nobody expected
the discussion to last until evening. Revenue had grown faster than anyone predicted, yet the
margins told a more complicated story. Several engineers argued that the new compiler pipeline
had paid for itself twice over; the finance team was not convinced. In the end the chairwoman
asked for a written proposal, with measurements, before the next meeting.
Language models turn text into numbers before they can do anything useful with it. A tokenizer
splits a sentence into pieces that appear often enough in the training data to deserve their own
entry in the vocabulary, and rare words are spelled out from smaller fragments. Getting this step
exactly right matters: a single different token changes every prediction that follows.
She walked along the river until the lights of the city disappeared behind the hills. The path
was muddy after the storm, and twice she had to climb over fallen branches. Somewhere an owl
called, and for a moment she considered turning back, but the cabin could not be far now.
Researchers measured the throughput of the system under realistic load, including long prompts,
short questions and a steady stream of follow-up requests. The results, summarised in the third
table, show that batching requests of similar length improves utilisation by almost forty percent.
It's widely believed that they'll finish the bridge before winter, though we've heard that
promise before. I'm not sure you're right about the budget; she'd said the same thing last year.
History rarely moves in straight lines. Empires that seemed permanent collapsed within a
generation, while small trading towns grew into capitals. Historians still debate whether
geography, technology or simple chance deserves most of the credit for these reversals.
Please remember to back up your files before upgrading the operating system. If something goes
wrong during the installation, restart the computer, hold the option key and choose the recovery
partition. Contact support with the error code shown on the screen if the problem persists.
""".split()

WORDS_EXTRA = ("algorithm bandwidth cathedral democracy equilibrium fjord gymnasium hypothesis "
               "infrastructure juxtaposition kaleidoscope labyrinth metamorphosis nomenclature "
               "oscilloscope photosynthesis quarantine renaissance silhouette thermodynamics "
               "ubiquitous vocabulary wavelength xylophone yesterday zeppelin").split()

SYLLABLES = ["ka", "lo", "mi", "ren", "to", "shi", "vel", "dor", "an", "qu", "ix", "bre", "sta",
             "ple", "gor", "thu", "nia", "zel", "cro", "wyn"]

MULTILINGUAL = [
    "東京は今日も晴れています。新しい駅の建設が始まりました。", "机器学习模型需要大量的数据来训练。",
    "我们明天早上九点在图书馆门口见面吧！", "한국어 문장을 토큰화하는 것은 생각보다 어렵습니다.",
    "Привет! Как прошли выходные? Мы ездили за город и катались на лодке.",
    "Γλώσσα και πολιτισμός συνδέονται στενά μεταξύ τους.", "مرحبا بكم في المؤتمر السنوي للذكاء الاصطناعي.",
    "שלום לכולם, הפגישה תתחיל בעוד עשר דקות.", "भारत एक विशाल और विविधतापूर्ण देश है।",
    "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ", "Tiếng Việt có nhiều dấu thanh điệu khác nhau.",
    "Ça coûte très cher, mais la qualité est exceptionnelle — n'est-ce pas ?",
    "Die Straße war naß, und die Bäume rauschten im Wind.", "¿Dónde está la estación de tren más cercana?",
    "Türkçe karakterler: ğ, ş, ı, İ, ö, ü, ç.", "Zażółć gęślą jaźń — polskie znaki diakrytyczne.",
    "😀 🚀 ✨ 👍🏽 🇫🇷 ❤️ 🤖 🧑🏿‍💻 ☕ 🎉", "数学公式：∑ᵢ xᵢ² ≤ ∞，且 α + β = γ。",
]

CODE_TEMPLATES = [
    "def {f}({a}, {b}=None):\n    \"\"\"Return the {w} of {a}.\"\"\"\n    if {b} is None:\n        {b} = {n}\n"
    "    result = [{a}[i] * {b} for i in range(len({a}))]\n    return sum(result) / max(len(result), 1)\n",
    "for (std::size_t {a} = 0; {a} < {b}.size(); ++{a}) {{\n    if ({b}[{a}] > {n}) {{\n"
    "        {f}({b}[{a}], \"{w}\");\n    }}\n}}\n",
    "const {f} = async ({a}) => {{\n  const response = await fetch(`/api/{w}/${{{a}}}`);\n"
    "  if (!response.ok) throw new Error('failed: ' + response.status);\n  return response.json();\n}};\n",
    "{{\"{w}\": {n}, \"{a}\": [{n}, {n2}, -{n}.5e-3], \"{b}\": null, \"enabled\": true}}\n",
    "$ cd ~/src/{w} && make -j{n} {f} 2>&1 | tee build.log\n$ grep -rn '{a}' include/ | wc -l\n",
    "class {F}:\n    def __init__(self, {a}: int = {n}) -> None:\n        self.{a} = {a}\n"
    "        self._{b} = {{}}\n\n    def __repr__(self) -> str:\n        return f\"{F}({{self.{a}!r}})\"\n",
    "template <class T>\nstruct {F} {{\n  T {a}[{n}];\n  constexpr T {f}(int {b}) const noexcept {{ return {a}[{b} % {n}]; }}\n}};\n",
    "SELECT {a}, COUNT(*) AS {b}_count FROM {w} WHERE {a} >= {n} GROUP BY {a} ORDER BY {b}_count DESC;\n",
    "<div class=\"{w}\" id=\"{a}-{n}\">\n  <span>{F}</span>&nbsp;<a href=\"/{w}?{a}={n}\">{b}</a>\n</div>\n",
]


def main(out_path, megabytes):
    rng = random.Random(20261125)
    target = int(megabytes * 1024 * 1024)

    def word():
        r = rng.random()
        if r < 0.04:
            return "".join(rng.choice(SYLLABLES) for _ in range(rng.randrange(2, 5)))
        if r < 0.07:
            return rng.choice(WORDS_EXTRA)
        return rng.choice(SEED_TEXT)

    def identifier():
        parts = ["".join(c for c in word() if c.isalnum()).lower() or "x" for _ in range(rng.randrange(1, 3))]
        return "_".join(parts)

    def english():
        sentences = []
        for _ in range(rng.randrange(3, 12)):
            ws = [word() for _ in range(rng.randrange(6, 28))]
            ws[0] = ws[0][:1].upper() + ws[0][1:]
            if rng.random() < 0.2:
                ws.insert(rng.randrange(len(ws)), str(rng.choice([1999, 2024, 42, 3.5, 1_000_000, 17])))
            s = " ".join(ws).rstrip(".,;:") + rng.choice([".", ".", ".", "!", "?", ";"])
            sentences.append(s)
        return " ".join(sentences)

    def code():
        t = rng.choice(CODE_TEMPLATES)
        return t.format(f=identifier(), F=identifier().title().replace("_", ""), a=identifier(), b=identifier(),
                        w=identifier(), n=rng.randrange(1, 5000), n2=rng.randrange(1, 99))

    def multilingual():
        return " ".join(rng.choice(MULTILINGUAL) for _ in range(rng.randrange(1, 5)))

    parts, size = [], 0
    while size < target:
        r = rng.random()
        para = english() if r < 0.60 else code() if r < 0.85 else multilingual()
        para = para.rstrip("\n") + "\n\n"
        parts.append(para)
        size += len(para.encode("utf-8"))
    with open(out_path, "w", encoding="utf-8", newline="") as f:
        f.write("".join(parts))
    print(f"wrote {size} bytes ({len(parts)} paragraphs) to {out_path}")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 6.0)

"""The static copies that replace or twin widget outputs in saved notebooks (kernel/widgets/_markdown.py)."""

from __future__ import annotations

from lm_jupyter.client.tables import Table
from lm_jupyter.kernel.widgets._markdown import StaticOutput, escape_html, exchange_markdown, twin_style


def test_escape_html_keeps_code_and_escapes_the_rest() -> None:
    text = 'Hi <img src=x onerror="alert(1)">\n```html\n<b>bold</b>\n```\nuse `<br>` and <script>x</script>'
    assert escape_html(text) == (
        'Hi &lt;img src=x onerror="alert(1)">\n```html\n<b>bold</b>\n```\n'
        "use `<br>` and &lt;script>x&lt;/script>"
    )
    assert escape_html("~~~\n<a>\n~~~\n<a>") == "~~~\n<a>\n~~~\n&lt;a>"  # tilde fences too
    assert escape_html("```\n<open fence never closed") == "```\n<open fence never closed"


def test_exchange_markdown_escapes_model_text_only_when_asked() -> None:
    blocks = [{"type": "reasoning", "text": "a<b"}, {"type": "text", "text": "<i>x</i>"}]
    plain = exchange_markdown("p<q", blocks, "m · 1 token", "", "collapse")
    assert plain == (
        "> p<q\n\n<details><summary>Reasoning</summary>\n\na<b\n\n</details>\n\n"
        "<i>x</i>\n\n<sub>m · 1 token</sub>"
    )
    rendered = exchange_markdown("p<q", blocks, "m · 1 token", "", "collapse", escape=True)
    assert "> p&lt;q" in rendered and "a&lt;b" in rendered and "&lt;i>x&lt;/i>" in rendered
    assert "<details><summary>Reasoning</summary>" in rendered and "<sub>m · 1 token</sub>" in rendered


def test_static_output_bundle_has_no_widget_view() -> None:
    bundle = StaticOutput("lmj-chat-static", "**hi**", "hi", status="done")._repr_mimebundle_()
    assert set(bundle) == {"text/markdown", "text/plain"}
    wrapper = '<div class="lmj-static lmj-chat-static" data-status="done">'
    assert bundle["text/markdown"] == wrapper + "\n\n**hi**\n\n</div>"
    styled = StaticOutput("x", "y", "y", style=twin_style("live", "x"))._repr_mimebundle_()["text/markdown"]
    assert styled.startswith("<style>.jp-OutputArea-child:has(.live) + .jp-OutputArea-child:has(.x)")


def test_table_markdown() -> None:
    sections = [Table(["C"], []), Table(["D"], [["4"]])]
    table = Table(["A", "B"], [["1", "x|y"]], caption="Two", sections=sections)
    assert table.markdown() == "Two\n\n| A | B |\n| --- | --- |\n| 1 | x\\|y |\n\n| D |\n| --- |\n| 4 |"


def test_notebook_messages_name_lms() -> None:
    from lm_jupyter.client.notebook_text import for_notebook

    assert for_notebook("Model 'x' is not downloaded. Run `lmj ls` to see them.") == (
        "Model 'x' is not downloaded. Run `%lms ls` to see them."
    )
    assert for_notebook("To load a model, run: lmj load KEY") == "To load a model, run: %lms load KEY"
    assert for_notebook("Start one with `lmj server start`; lmj import PATH; lmj lsx") == (
        "Start one with `lmj server start`; lmj import PATH; lmj lsx"
    )


def test_escaped_model_text_renders_its_backslashes_and_maths_through_nbconvert() -> None:
    """CommonMark eats a backslash before punctuation; maths written as \\(..\\) or \\[..\\] is
    given the $ delimiters every renderer typesets. Rendered by nbconvert's own Markdown."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    text = r"Use \(\frac{a}{b} < 1\) and \[x_1^2\], a path C:\new\{dir} and `\(code\)` <b>x</b>"
    escaped = escape_html(text)
    assert escaped == (
        r"Use $\frac{a}{b} \lt 1$ and $$x_1^2$$, a path C:\\new\\{dir} and `\(code\)` &lt;b>x&lt;/b>"
    )
    html = markdown2html_mistune(escaped)
    assert r"$\frac{a}{b} \lt 1$" in html and r"$$x_1^2$$" in html  # left for MathJax, backslashes kept
    assert r"C:\new\{dir}" in html  # shown as the model wrote it
    assert r"<code>\(code\)</code>" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "$5 and $10" in escape_html("$5 and $10")  # prices are not maths

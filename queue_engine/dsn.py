# ruff: noqa: RUF001, RUF002  (full-width CJK punctuation in bounce wording is meant)
"""Bounces: RFC 3464 delivery status notifications and the bounce texts of real MTAs.

Two readers, tried in this order by `reports.parse_report`:

- `parse_delivery_status`: a `message/delivery-status` part (Postfix, Exim,
  Sendmail, Courier, Gmail, Exchange/Office 365, Amazon SES, ... all send one):
  one finding per recipient block (Final-Recipient, Action, Status,
  Diagnostic-Code); a block that lacks the SMTP reply gets it from the
  human-readable part, where the same recipient is described.
- `parse_bounce`: no machine-readable part, only text, as qmail, older
  Sendmail and Exim, Lotus Domino, Exchange 2003, Yahoo, Chinese providers and
  many others write it. Recognised by its wording (headers and body markers
  drawn from the MTAs' own sources); recipients are found where those layouts
  put them (`<a@b>:` lines, indented address lists, "was not delivered to",
  labelled "收件人：" lines, X-Failed-Recipients, ...) and the SMTP reply by
  scoring every reply-like code in the text.

The category always comes from `classify.classify_reply`. Where a bounce gives
no reply code, the action gives it (failed: 550, delayed: 450) and the wording
decides, with a few phrase hints (`_HINTS`: MTA-local errors and non-English
texts) rewritten into the canonical reply they stand for; nothing found: other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from queue_engine.classify import Classification, classify_reply
from queue_engine.reports import (
    ADDRESS,
    ENHANCED,
    Finding,
    Mail,
    classify_text,
    split_reply,
)

ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
_RECIPIENT_FIELDS = frozenset(
    {"final-recipient", "original-recipient", "action", "status", "diagnostic-code"}
)
_FIELD = re.compile(r"([A-Za-z][\w-]{0,60})[ \t]*:[ \t]*(.*)")
_TYPE_PREFIX = re.compile(r"^\s*[\w-]{1,20}\s*;\s*")
_NOT_RECIPIENTS = frozenset(
    {"mailer-daemon", "postmaster", "mailer_daemon", "mailerdaemon", "double-bounce", "mail-daemon"}
)


# --- RFC 3464 ------------------------------------------------------------------------------


def status_blocks(payloads: list[str]) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Per-message fields and one dict per recipient, field names lower-case, first wins."""
    blocks: list[list[tuple[str, str]]] = []
    for payload in payloads:
        current: list[tuple[str, str]] = []
        for raw in payload.split("\n"):
            line = raw.rstrip()
            if not line.strip():
                if current:
                    blocks.append(current)
                    current = []
                continue
            if line[0] in " \t" and current:
                name, value = current[-1]
                current[-1] = (name, f"{value} {line.strip()}")
                continue
            m = _FIELD.match(line.strip())
            if m:
                current.append((m.group(1).lower(), m.group(2).strip()))
        if current:
            blocks.append(current)
    per_message: dict[str, str] = {}
    recipients: list[dict[str, str]] = []
    for block in blocks:
        if not any(name in _RECIPIENT_FIELDS for name, _ in block):
            for name, value in block:
                per_message.setdefault(name, value)
            continue
        rec: dict[str, str] = {}
        for name, value in block:
            # Some MTAs run several recipients together in one block.
            if name in ("final-recipient", "original-recipient") and name in rec:
                recipients.append(rec)
                rec = {}
            rec.setdefault(name, value)
        recipients.append(rec)
    return per_message, recipients


def _address_field(value: str | None) -> str | None:
    if not value:
        return None
    found = ADDRESS.search(value)
    if found:
        return found.group(0)
    value = _TYPE_PREFIX.sub("", value).strip().strip("<>\"' ")
    return value or None


def _action(value: str | None, enhanced: str | None) -> str:
    word = (value or "").strip().lower().split(" ", 1)[0].strip("();,.")
    if word in ACTIONS:
        return word
    if word.startswith(("fail", "bounce", "reject")):
        return "failed"
    if word.startswith(("delay", "defer", "retry", "transient")):
        return "delayed"
    if enhanced:
        return {"2": "delivered", "4": "delayed"}.get(enhanced[0], "failed")
    return "failed"


def parse_delivery_status(mail: Mail) -> list[Finding] | None:
    if not mail.status:
        return None
    per_message, records = status_blocks(mail.status)
    if not records:
        return None
    text = mail.text
    exclude = _exclusions(mail, per_message.get("x-postfix-sender"))
    described = {addr.lower(): block for addr, block in recipient_blocks(text, exclude)}
    return_path = mail.return_path(per_message.get("x-postfix-sender"))
    message_id = mail.original_message_id() or _msgid_field(per_message)
    original = mail.original_dict()
    findings = []
    for rec in records:
        recipient = (
            _address_field(rec.get("final-recipient"))
            or _address_field(rec.get("original-recipient"))
            or _address_field(rec.get("x-actual-recipient"))
        )
        status_match = ENHANCED.search(rec.get("status", ""))
        status = status_match.group(1) if status_match else None
        action = _action(rec.get("action"), status)
        diagnostic = " ".join(_TYPE_PREFIX.sub("", rec.get("diagnostic-code", ""), 1).split())
        reply = diagnostic_reply(diagnostic) if diagnostic else None
        shown = reply.diagnostic if reply is not None and reply.code is not None else diagnostic
        if reply is None or reply.code is None:
            human = described.get(recipient.lower()) if recipient else None
            if human is None and len(records) == 1:
                human = text
            from_text = best_reply(human) if human else None
            if from_text is not None and (reply is None or from_text.code is not None):
                reply = from_text
        context = diagnostic or (described.get(recipient.lower(), "") if recipient else "")
        if not context.strip() and len(records) == 1:
            context = text
        findings.append(
            _finding(
                recipient=recipient,
                action=action,
                status=status,
                reply=reply,
                diagnostic=shown or None,
                context=context or mail.subject,
                return_path=return_path,
                message_id=message_id,
                original=original,
                arrival=per_message.get("arrival-date"),
            )
        )
    return findings


def _msgid_field(fields: dict[str, str]) -> str | None:
    for name in ("x-original-message-id", "original-message-id"):
        value = fields.get(name)
        if value:
            found = re.search(r"<[^<>\s]+>", value)
            return found.group(0) if found else value
    return None


# --- SMTP replies inside free text ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    code: int | None
    enhanced: str | None
    text: str  # what follows the code (enhanced status included), for classify_reply
    diagnostic: str  # the reply as quoted, whitespace collapsed


# Starting with the digits lets `re` skip ahead; what may precede a code is checked after.
_CODE = re.compile(
    r"([45]\d\d)(?:[ \t]+\1(?=[ \t-]))?"
    r"(?:(?:[ \t]*[-: \t][ \t]*|[ \t]*\n[ \t]*)#?([245]\.\d{1,3}\.\d{1,3})(?!\.?\d))?"
    r"(?=[\s:;,'\".)\]-]|$)"
)
_LONE_ENHANCED = re.compile(r"[45]\.\d{1,3}\.\d{1,3}(?!\.?\d)")
_NOT_BEFORE_CODE = frozenset(".#/=@'-_")
REPLY_SCAN_CHARS = 16 * 1024


def _free_start(text: str, start: int, not_before: frozenset[str] = _NOT_BEFORE_CODE) -> int:
    """Where a code found at `start` begins ("#550" at the "#"), or -1 inside a longer token."""
    if start and text[start - 1] == "#":
        start -= 1
    if start:
        prev = text[start - 1]
        if prev.isalnum() or prev in not_before:
            return -1
    return start


def _codes(text: str) -> list[tuple[int, re.Match[str]]]:
    out = []
    for m in _CODE.finditer(text):
        start = _free_start(text, m.start())
        if start >= 0:
            out.append((start, m))
    return out


_CODE_AFTER_QUOTE = re.compile(r"'#?([45]\d\d)[ \t]+([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)")
_INTRO = re.compile(
    r"(?i)(?:said|returned|replied|reply|response|responded|answered|error|reason|diagnostic"
    r"|diagnostic-code|was|<<<|code|status|smtp|remote server|原因|错误|錯誤|回复|回覆|返回|结果)"
    r"[^\w\n]{0,6}\n?[ \t'\"(\[]*$"
)
_IN_REPLY_TO = re.compile(r"\s*\(in reply to (?:end of )?[\w ]{2,20}?(?: command)?\)\s*$", re.I)
_LETTERS = re.compile(r"[^\W\d_]{2}")
_STOP_LINE = re.compile(
    r"(?i)^\s*(?:Giving up on|I'm not going to try again|-{3,}|Learn more|Original message"
    r"|Diagnostic information|Generating server|Reporting-MTA|Final-Recipient|Action:|Status:"
    r"|Received:|\[RCPT_TO\]|\[DATA\]|\[MAIL_FROM\])"
)


def _score(text: str, start: int, m: re.Match[str]) -> int:
    score = 0
    if m.group(2):
        score += 3 if m.group(2)[0] == m.group(1)[0] else 1
    before = text[max(0, start - 60) : start]
    if _INTRO.search(before):
        score += 3
    line_start = before.rfind("\n")
    if not before[line_start + 1 :].strip(" \t>'\"(#"):
        score += 1
    if _LETTERS.search(text, m.end(), m.end() + 40):
        score += 1
    return score


def best_reply(text: str) -> Reply | None:
    """The SMTP reply a bounce text quotes: the most reply-like code, else a lone enhanced code."""
    if not text:
        return None
    text = text[:REPLY_SCAN_CHARS]  # the explanation comes first; what follows is quoted mail
    best: tuple[int, int, re.Match[str]] | None = None
    for start, m in _codes(text):
        score = _score(text, start, m)
        if score >= 2 and (best is None or score > best[0]):
            best = (score, start, m)
    if best is not None:
        return _reply_at(text, best[1], best[2])
    quoted = _CODE_AFTER_QUOTE.search(text)  # Exchange: Remote Server returned '550 5.1.1 ...'
    if quoted:
        return _reply_at(text, quoted.start() + 1, None)
    lone = [
        m
        for m in _LONE_ENHANCED.finditer(text)
        if _free_start(text, m.start(), frozenset("._")) >= 0
    ]
    if lone:
        pick = next((m for m in lone if not m.group(0).endswith(".0.0")), lone[0])
        return _reply_at(text, text.rfind("\n", 0, pick.start()) + 1, None)
    return None


def diagnostic_reply(diagnostic: str) -> Reply | None:
    """The reply in a Diagnostic-Code value ("550 5.1.1 ..." or prose around one)."""
    code, rest = split_reply(diagnostic)
    if code is not None and code >= 400:
        enhanced = ENHANCED.search(rest)
        return Reply(code, enhanced.group(1) if enhanced else None, rest, _clean(f"{code} {rest}"))
    found = best_reply(diagnostic)
    if found is not None:
        return found
    enhanced = ENHANCED.search(diagnostic)
    if enhanced:
        return Reply(None, enhanced.group(1), diagnostic, _clean(diagnostic))
    return None


def _reply_at(text: str, start: int, m: re.Match[str] | None) -> Reply:
    """The reply starting at `start`: its line, plus continuation lines (indented, or the code
    repeated as in multi-line replies), up to a blank or a different line."""
    end = text.find("\n", start)
    end = len(text) if end == -1 else end
    lines = [text[start:end]]
    dash = f"{m.group(1)}-" if m else None
    for line in text[end + 1 :].split("\n"):
        if not line.strip() or _STOP_LINE.match(line) or len(lines) > 12:
            break
        if line[0] in " \t" or (dash and lines[-1].lstrip("#").startswith(dash)):
            lines.append(line)
            continue
        break
    quoted = "\n".join(lines).strip().lstrip("#").strip()
    mark = text[start - 1] if start else ""
    if mark in ("'", '"') and quoted.rfind(mark) > 0:  # returned '550 5.1.1 ...' (zurückgegeben)
        quoted = quoted[: quoted.rfind(mark)]
    code, rest = split_reply(quoted)
    if code is None or code < 400:
        code = None
        rest = " ".join(quoted.split())
    rest = _IN_REPLY_TO.sub("", rest).strip().strip("#'\" ").strip()
    if rest.endswith(")") and rest.count(")") > rest.count("("):
        rest = rest[:-1].rstrip()
    rest = rest[:500]
    enhanced = ENHANCED.search(rest[:40] if code is not None else rest)
    diagnostic = f"{code} {rest}".strip() if code is not None else rest
    return Reply(code, enhanced.group(1) if enhanced else None, rest, diagnostic)


def _clean(text: str) -> str:
    return " ".join(text.split())[:500]


# --- classifying one recipient ---------------------------------------------------------------


def _lower_pattern(pattern: str) -> str:
    """The pattern for lower-cased text (escapes such as \\S kept): `re.I` is ~25 times slower."""
    return re.sub(r"(\\.)|([A-Z]+)", lambda m: m.group(1) or m.group(2).lower(), pattern)


_HINTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(_lower_pattern(pattern)), reply)
    for pattern, reply in (
        (
            r"用户不存在|用戶不存在|收件人不存在|收件人地址不存在|收件人邮箱不存在|邮箱不存在"
            r"|郵箱不存在|邮箱地址不存在|地址不存在|帐号不存在|账号不存在|账户不存在|帳號不存在"
            r"|该用户未开通|無此用戶|无此用户|查无此人|收信人不存在|用户名不存在|不存在的(?:用户|邮箱)"
            r"|宛先(?:が)?(?:不明|見つかりません)|存在しない|ユーザ(?:ー)?が(?:存在しません|見つかりません)"
            r"|not listed in (?:the )?(?:Domino Directory|public Name & Address Book)"
            r"|no mailbox here by that name|does not like recipient"
            r"|unbekannte[rn]? (?:Empf|Benutzer)"
            r"|existiert nicht|n'existe pas|inexistant|no existe|non esiste|inesistente",
            "5.1.1 user unknown",
        ),
        (
            r"空间不足|空間不足|邮箱已满|郵箱已滿|信箱已满|邮箱满|容量已满|容量不足|超出配额|超过.{0,6}容量"
            r"|mailbox (?:is )?full|over quota|quota exceeded|disk quota|容量(?:オーバー|超過)"
            r"|mailbox exceeds (?:the )?allowed size|exceeded (?:its |the )?storage allocation"
            r"|insufficient (?:disk space|storage)"
            r"|Postfach (?:ist )?voll|boîte (?:aux lettres )?pleine",
            "5.2.2 mailbox full",
        ),
        (r"垃圾邮件|垃圾郵件|广告邮件|スパム", "5.7.1 message rejected as spam"),
        (
            r"黑名单|黑名單|blacklist|blocklist|block list"
            r"|listed (?:on|at|in) .{0,30}(?:RBL|DNSBL)",
            "5.7.0 blocked: sending IP or domain is on a blocklist",
        ),
        (
            r"域名不存在|域名无效|找不到.{0,6}(?:主机|域名|服务器)|DNS.{0,6}失败|无法解析"
            r"|Host or domain name not found|Name service error|Domain name not found"
            r"|No such domain"
            r"|Unrouteable address|unroutable|all relevant MX records point to non-existent hosts"
            r"|couldn't find any host|could not find any host|couldn't find a mail exchanger"
            r"|DNS Error|host not found|domain not found|null MX|DNS lookup failed"
            r"|ドメインが(?:存在しません|見つかりません)",
            "5.4.4 unrouteable: host or domain name not found",
        ),
        (
            r"连接超时|無法連接|无法连接|连接失败|连接被拒绝|Connection (?:timed out|refused|reset)"
            r"|timed out while|lost connection with|No route to host|Network is unreachable"
            r"|wasn't able to establish an SMTP connection|could not connect|couldn't connect"
            r"|unable to connect|connect to \S+: .{0,30}refused|recipient server did not accept",
            "5.4.1 no answer from host: connection failed",
        ),
        (
            r"retry timeout exceeded|in the queue too long|message expired|delivery time expired"
            r"|QUEUE\.Expired|could not be delivered within|delivery period expired"
            r"|邮件过期|投递超时"
            r"|retry time not reached|have been failing for a long time",
            "5.4.7 delivery time expired",
        ),
        (
            r"邮件(?:过大|太大)|超过.{0,6}大小|message (?:size )?(?:is )?too (?:large|big)"
            r"|exceeds? (?:the )?(?:maximum|fixed) (?:message )?size|size limit",
            "5.3.4 message too big",
        ),
        (r"拒绝|拒收|被阻止|退回了您的邮件|受信拒否", "5.7.1 rejected by the recipient's policy"),
    )
)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _hint(text: str) -> tuple[str, str] | None:
    """The canonical reply a codeless or non-English failure text stands for, and its line."""
    text = text[:HEAD_CHARS]
    low = text.lower()
    if len(low) != len(text):  # a few characters grow when lower-cased: search the copy
        text = low
    for pattern, reply in _HINTS:
        m = pattern.search(low)
        if m:
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            line = " ".join(text[start : len(text) if end == -1 else end].split())
            return reply, line[:300]
    return None


def judge(
    action: str, code: int | None, enhanced: str | None, reply_text: str, context: str
) -> tuple[Classification | None, str | None]:
    """classify_reply's verdict for one recipient, and a diagnostic when the reply gave none."""
    if action != "failed":
        if code is not None or enhanced is not None:
            return None, None
        hint = _hint(reply_text) or _hint(context)
        return None, hint[1] if hint else (_clean(reply_text or context)[:300] or None)
    if code is None and enhanced is not None and enhanced[0] in "45":
        code = 550 if enhanced[0] == "5" else 450
    if code is not None:
        text = reply_text
        if enhanced and enhanced not in text:
            text = f"{enhanced} {text}"
        if not ENHANCED.search(text) and _NON_ASCII.search(text):
            hint = _hint(text)
            if hint:
                text = f"{hint[0]} {text}"
        return classify_reply(code, text), None
    hint = _hint(reply_text) or _hint(context)
    if hint is not None:
        return classify_reply(550, hint[0]), hint[1]
    wording = " ".join((reply_text or context).split())[:1000]
    return classify_text(wording, failed=True), (wording[:300] or None)


def _finding(
    *,
    recipient: str | None,
    action: str,
    status: str | None,
    reply: Reply | None,
    diagnostic: str | None,
    context: str,
    return_path: str | None,
    message_id: str | None,
    original: dict[str, str],
    arrival: str | None = None,
) -> Finding:
    code = reply.code if reply else None
    enhanced = status
    if reply is not None and reply.enhanced and (not status or status.endswith(".0.0")):
        enhanced = reply.enhanced
    reply_text = reply.text if reply else ""
    cls, worded = judge(action, code, enhanced, reply_text, context)
    return Finding(
        kind="dsn",
        recipient=recipient,
        smtp_code=code,
        enhanced_status=enhanced,
        diagnostic=diagnostic or (reply.diagnostic if reply else None) or worded,
        category=cls.category if cls else None,
        permanent=cls.permanent if cls else False,
        pause_reason=cls.pause_reason if cls else None,
        action=action,
        return_path=return_path,
        original_message_id=message_id,
        original_headers=original,
        arrival_date=arrival,
    )


# --- bounces without a delivery-status part ------------------------------------------------------

_BOUNCE_SUBJECT = re.compile(
    r"""(?ix)
    undeliver|non[- ]?deliver|not\ delivered|could\ not\ (?:be\ )?deliver
    |returned\ (?:mail|to\ sender)
    |delivery\ (?:status|failure|failed|has\ failed|problem|notification|report|error|delayed
                |incomplete|notice)
    |mail\ delivery\ (?:failed|failure|subsystem|system|error|problem)|failure\ notice
    |failed\ delivery|mail\ system\ error|message\ (?:not\ delivered|delayed|delivery\ failed)
    |delayed\ mail|mail\ failure|warning:\ (?:message|could\ not\ send)|mail\ could\ not
    |unzustellbar|nicht\ zustellbar|non\ remis|non\ distribu|impossible\ de\ (?:remettre|distribuer)
    |no\ se\ puede\ entregar|no\ entregado|non\ recapitabile|mancato\ recapito
    |n[ãa]o\ (?:foi\ )?entregue|onbestelbaar|niet\ bezorgd|olevererbart|unbestellbar|недоставлен
    |не\ доставлено|退信|退回|投递失败|投遞失敗|发送失败|發送失敗|无法投递|無法投遞|未能送达
    |递送失败|配信不能|配送不能|送信エラー|配信エラー|전달\ 실패|반송
    """
)
_DAEMON = re.compile(
    r"(?i)mailer[-_]?daemon|postmaster|mail\s*delivery\s*(?:subsystem|system|service)?"
    r"|mail\s*administrator|mdaemon|delivery\s*status|\bbounces?@|邮件系统|系统管理员|系統管理員"
)
# Markers are literal phrases, looked for in the lower-cased head of the text (substring
# search is two orders of magnitude faster than a big case-insensitive alternation);
# the few that need structure are regular expressions, tried only after a cheap hint.
_BOUNCE_PHRASES = (
    "this is the mail system at host",
    "the postfix program",
    "this message was created automatically by mail delivery software",
    "could not be delivered to one or more",
    "could not be delivered to all",
    "had permanent fatal errors",
    "the following address(es) failed",
    "the following addresses failed",
    "the following address failed",
    "transcript of session follows",
    "transcript of the session follows",
    "this is the qmail-send program",
    "i'm afraid i wasn't able to deliver",
    "delivery has failed to these recipients",
    "diagnostic information for administrators",
    "did not reach the following recipient",
    "was not delivered to:",
    "delivery to the following recipient",
    "wasn't delivered to",
    "the response from the remote server",
    "the error that the other server",
    "remote host said",
    "remote server returned",
    "remote server said",
    "unable to deliver your message",
    "unable to deliver message",
    "unable to deliver mail",
    "unable to deliver your mail",
    "delivery status notification",
    "undeliverable mail",
    "delays in delivering",
    "this is a warning",
    "an error occurred while trying to deliver",
    "was undeliverable",
    "this is the mailer-daemon",
    "failure reasons",
    "could not deliver the message",
    "could not deliver message",
    "could not deliver mail",
    "message could not be delivered",
    "delivery failed to",
    "delivery failed for",
    "delivery failure to",
    "delivery failure for",
    "message still undelivered",
    "message is still undelivered",
    "smtp error from remote",
    "giving up on",
    "permanent fatal error",
    "the original message was received at",
    "邮件被退回",
    "郵件被退回",
    "信件被退回",
    "邮件已被退回",
    "退信原因",
    "系统退信",
    "无法投递",
    "无法发送",
    "无法送达",
    "無法投遞",
    "無法傳送",
    "無法送達",
    "投递失败",
    "投遞失敗",
    "发送失败",
    "未能投递",
    "未能送达",
    "未能成功发送",
    "邮件没有发送成功",
    "邮件没有投递成功",
    "送信できません",
    "配信でき",
    "配信に失敗",
    "届きません",
    "konnte nicht zugestellt",
    "n'a pas pu être remis",
    "n'a pas pu être distribué",
    "no se ha podido entregar",
    "non è stato possibile recapitare",
    # Office 365 / Exchange NDRs in other languages
    "fehler bei der zustellung an folgende empfänger",
    "diagnoseinformationen für administratoren",
    "vom remoteserver wurde",
    "la remise des messages aux destinataires",
    "informations de diagnostic pour les administrateurs",
    "le serveur distant a retourné",
    "error al entregar a estos destinatarios",
    "información de diagnóstico para administradores",
    "falha na entrega a estes destinatários",
    "uw bericht kan niet worden bezorgd",
    "consegna non riuscita",
    "次の受信者またはグループへの配信に失敗しました",
    "无法传递到以下收件人或组",
    "無法傳遞到下列收件者或群組",
    "远程服务器返回",
    "管理员诊断信息",
)
_BOUNCE_SHAPES = re.compile(
    r"""(?mx)
    ^\s*the\ mail\ system\s*$|^\W*address\ not\ found\W*$|^\W*message\ not\ delivered
    |your\ message\ (?:to\ .{1,100}?\ )?(?:couldn't|could\ not|can't|cannot|wasn't|was\ not
        |did\ not|has\ not)\ (?:be\ |been\ )?(?:delivered|reach)
    |很抱歉.{0,30}退回
    """
)
_SHAPE_HINTS = ("mail system", "not found", "not delivered", "your message", "退回")
_DELAY_PHRASES = (
    "this is a warning",
    "do not need to resend",
    "still undelivered",
    "yet undelivered",
    "has been delayed",
    "is being delayed",
    "was delayed",
    "delivery is delayed",
    "delivery delayed",
    "will be retried",
    "will retry",
    "will continue to retry",
    "will continue to be retried",
    "will keep trying",
    "will keep on trying",
    "delivery attempts will continue",
    "no action is required on your part",
    "temporary failure report",
    "delays in delivering",
    "is delayed for more than",
    "still being retried",
    "could not send message for past",
    "will try again",
    "will be attempted",
    "延迟投递",
    "延遲投遞",
    "投递延迟",
    "将继续尝试",
    "會繼續嘗試",
    "继续尝试投递",
    "稍后重试",
    "稍后再试",
    "稍后将重试",
)
_DELAY_SUBJECT = re.compile(r"(?i)\bdelay|\(delay\)|warning|still being retried|延迟|延遲")
_FATAL_PHRASES = (
    "permanent error",
    "permanent failure",
    "permanently failed",
    "permanent fatal error",
    "failed permanently",
    "giving up",
    "given up",
    "delivery has failed",
    "will not be retried",
    "undelivered mail returned",
    "returning message",
    "has been rejected",
    "has been returned",
    "was rejected",
    "退信",
    "被退回",
    "投递失败",
    "无法投递",
)
HEAD_CHARS = 6000


def _any(phrases: tuple[str, ...], low: str) -> bool:
    return any(p in low for p in phrases)


def looks_like_bounce(mail: Mail, text: str) -> bool:
    h = mail.headers
    if "x-failed-recipients" in h or "x-ms-exchange-message-is-ndr" in h:
        return True
    low = text[:HEAD_CHARS].lower()
    if _any(_BOUNCE_PHRASES, low) or (_any(_SHAPE_HINTS, low) and _BOUNCE_SHAPES.search(low)):
        return True
    subject = bool(_BOUNCE_SUBJECT.search(mail.subject))
    daemon = bool(_DAEMON.search(mail.sender))
    report = mail.content_type == "multipart/report"
    return (subject and (daemon or report)) or (daemon and report)


def is_delay(mail: Mail, text: str) -> bool:
    low = text[:HEAD_CHARS].lower()
    subject = mail.subject.lower()
    delayed = _any(_DELAY_PHRASES, low) or bool(_DELAY_SUBJECT.search(subject))
    return delayed and not _any(_FATAL_PHRASES, low) and not _any(_FATAL_PHRASES, subject)


_ADDR = r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}"
_LABELS = (
    r"Final-Recipient|Original-Recipient|Recipient(?:\(s\)|s)?(?:\s+address(?:es)?)?|Failed\s+recipients?"
    r"|Addressed\s+to|To|Empfänger|Destinataire|Destinatario|Destinatário|Получатель"
    r"|收\s*件\s*人(?:地址)?|收\s*信\s*人|收件地址|宛先"
)
_LABELLED = re.compile(
    rf"^\s*(?:{_LABELS})\s*[:：]\s*(?:rfc822\s*;\s*)?[^<@\n]{{0,80}}?<?({_ADDR})>?[^@]*$", re.I
)
_LINE_ANCHORS = (
    # <a@b>:  /  a@b  /  "a@b":  /  a@b (a@b)  /  <a@b> (expanded from <c@d>):
    re.compile(
        rf"^\s*[<\"'\[]?({_ADDR})[>\"'\]]?\s*"
        rf"(?:\((?:expanded from|generated from|{_ADDR})[^)]*\)\s*)?[:：]?\s*$"
    ),
    re.compile(rf"^\s*(?:{_ADDR})?\s*<mailto:({_ADDR})>\s*$"),  # Office 365: a@b<mailto:a@b>
    re.compile(rf"^\s*<({_ADDR})>\s*(?:\(expanded from [^)]*\))?\s*[:：]\s*(.+)$"),  # Postfix
    re.compile(rf"^\s*<?({_ADDR})>?\.\.\.\s*(.+)$"),  # Sendmail: <a@b>... User unknown
    re.compile(rf"^\s*({_ADDR})\s*[:：]\s+(.+)$"),  # OpenSMTPD: a@b: 550 ...
    re.compile(rf"^\s*({_ADDR})\s+on\s+\S.*$"),  # Exchange 2003: a@b on 4/29/2007 ...
    _LABELLED,
    re.compile(rf"^\s*[^@<>:\n]{{1,80}}?\s*[<(]({_ADDR})[>)]\s*[:：]?\s*$"),  # Name (a@b)
    # IMail and others: "User mailbox exceeds allowed size: a@b" (a phrase, not a header name)
    re.compile(
        rf"^(?=.*?[:：]\s*<?({_ADDR})>?\s*$)\s*([^@<>:\n]*?\w\s+\w[^@<>:\n]{{0,200}}?)\s*[:：]"
    ),
)
_SENTENCE_ANCHOR = re.compile(
    rf"(?i)(?:deliver\w*|sen[dt]\w*|reach\w*|relay\w*|rout\w*|transmit\w*|forward\w*)\b[^.\n]{{0,40}}?"
    rf"\bto:?\s*[<\"“]?({_ADDR})"
    rf"|RCPT\s+TO:?\s*<?({_ADDR})"
    rf"|(?:发送到|发送给|发给|发往|投递到|投递给|送达|寄给|發送到|發送給|傳送到|寄給)\s*[<\"“]?({_ADDR})"
    rf"|({_ADDR})\s*(?:への|宛て?の)"
)


def _exclusions(mail: Mail, *extra: str | None) -> set[str]:
    values = [mail.sender, *(e or "" for e in extra)]
    for name in ("reply-to", "sender", "to", "delivered-to", "x-original-to", "return-path"):
        values.extend(mail.headers.all(name))
    if mail.original is not None:
        for name in ("from", "return-path", "sender", "reply-to"):
            values.append(mail.original.get(name))
    return {a.lower() for v in values if v for a in ADDRESS.findall(v)}


def _excluded(addr: str, exclude: set[str]) -> bool:
    return addr.lower() in exclude or addr.partition("@")[0].lower() in _NOT_RECIPIENTS


def recipient_blocks(text: str, exclude: set[str]) -> list[tuple[str, str]]:
    """Each recipient a bounce text lists, with the text that describes it (all its mentions)."""
    lines = text.split("\n")
    anchors: list[tuple[int, str, str, bool]] = []  # line, address, rest of line, labelled
    for i, line in enumerate(lines):
        if "@" not in line or len(line) > 400:
            continue
        for rx in _LINE_ANCHORS:
            m = rx.match(line)
            if m is None:
                continue
            if not _excluded(m.group(1), exclude):
                rest = m.group(2) if (m.re.groups >= 2 and m.group(2)) else ""
                anchors.append((i, m.group(1), rest, rx is _LABELLED))
            break
    blocks: dict[str, tuple[str, list[tuple[bool, str]]]] = {}
    for k, (i, addr, rest, labelled) in enumerate(anchors):
        end = anchors[k + 1][0] if k + 1 < len(anchors) else len(lines)
        chunk = "\n".join([rest, *lines[i + 1 : end]]) if rest else "\n".join(lines[i + 1 : end])
        blocks.setdefault(addr.lower(), (addr, []))[1].append((labelled, chunk))
    # A summary line ("To: a@b") says less than the recipient's own paragraph: that goes first.
    return [
        (addr, "\n".join(chunk for _, chunk in sorted(chunks, key=lambda c: c[0])))
        for addr, chunks in blocks.values()
    ]


def _fallback_recipients(mail: Mail, text: str, exclude: set[str]) -> list[str]:
    found: dict[str, str] = {}
    lines = [line for line in text.split("\n") if "@" in line]
    for line in lines:
        for m in _SENTENCE_ANCHOR.finditer(line):
            addr = next(g for g in m.groups() if g)
            if not _excluded(addr, exclude):
                found.setdefault(addr.lower(), addr)
    if found:
        return list(found.values())
    for value in mail.headers.all("x-failed-recipients"):
        for addr in ADDRESS.findall(value):
            found.setdefault(addr.lower(), addr)
    if found:
        return list(found.values())
    for addr in (a for line in lines for a in ADDRESS.findall(line)):
        if not _excluded(addr, exclude):
            found.setdefault(addr.lower(), addr)
    if len(found) == 1:
        return list(found.values())
    if mail.original is not None:
        to = ADDRESS.findall(mail.original.get("to"))
        if len(to) == 1:
            return to
    return []


def _reply_mentioning(text: str, addr: str) -> Reply | None:
    """In a shared transcript: the reply on the line that names this recipient."""
    lowered = text.lower()
    needle = addr.lower()
    pos = lowered.find(needle)
    while pos != -1:
        start = text.rfind("\n", 0, pos) + 1
        end = text.find("\n", pos)
        line = text[start : len(text) if end == -1 else end]
        for at, m in _codes(line):
            if m.group(2):
                return _reply_at(text, start + at, m)
        pos = lowered.find(needle, pos + len(needle))
    return None


def parse_bounce(mail: Mail) -> list[Finding] | None:
    text = mail.text
    if not looks_like_bounce(mail, text):
        return None
    action = "delayed" if is_delay(mail, text) else "failed"
    exclude = _exclusions(mail)
    blocks: list[tuple[str | None, str]] = list(recipient_blocks(text, exclude))
    failed = {
        a.lower(): a for v in mail.headers.all("x-failed-recipients") for a in ADDRESS.findall(v)
    }
    if failed:  # Exim and Gmail name every failed recipient here: that list is the authority
        blocks = [(a, b) for a, b in blocks if a and a.lower() in failed]
        known = {a.lower() for a, _ in blocks if a}
        blocks.extend((a, "") for key, a in failed.items() if key not in known)
    if not blocks:
        blocks = [(a, "") for a in _fallback_recipients(mail, text, exclude)] or [(None, "")]
    single = len(blocks) == 1
    shared: Reply | None = None
    shared_done = False
    return_path = mail.return_path()
    message_id = mail.original_message_id()
    original = mail.original_dict()
    findings = []
    for addr, block in blocks:
        reply = best_reply(text if single else block)
        if reply is None and not single:
            reply = _reply_mentioning(text, addr) if addr else None
            if reply is None:
                if not shared_done:
                    shared, shared_done = best_reply(text), True
                reply = shared
        findings.append(
            _finding(
                recipient=addr,
                action=action,
                status=None,
                reply=reply,
                diagnostic=None,
                context=block if block.strip() else f"{mail.subject}\n{text}",
                return_path=return_path,
                message_id=message_id,
                original=original,
            )
        )
    return findings

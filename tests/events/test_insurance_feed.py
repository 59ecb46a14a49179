"""The insurance e-prescription feed (POL-18) against a stub platform started by the test: the
stub checks every message's field names, lengths and required fields against its own copy of
the interface table (not the mapping's), answers with its numbers, signs at 7102 with a key of
its own and accepts a 7103 only with what its 7102 answered, and refuses one patient.
7103 also names the pharmacist who reviewed the prescription (审方药师, POL-18): the one who
overrode the central review (POL-06), else the alliance's configured responsible pharmacist."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from gateway.demo import load_demo
from gateway.demo._alliance import DRUG_BY_ID, medication_request
from gateway.events.insurance.pharmacist import reviewing_pharmacist
from gateway.fhir.json_text import ResourceText
from gateway.hooks import RequestContext
from gateway.principal import INSECURE_DEV
from gateway.service.fhir_service import FhirService
from gateway.store.sql import open_store
from tests.events.conftest import subscription, wait_for
from tests.events.test_durable_delivery import _settings, gateway, write

CTX = RequestContext(base_url="http://test/fhir", principal=INSECURE_DEV)
REFUSED_PATIENT = "xy-pat-li-wenbin"
SID = "http://yaolian.org/fhir/sid/"
RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
REVIEW_URL = "http://yaolian.org/fhir/StructureDefinition/yl-central-review-result"
#: the alliance's responsible pharmacist for automated reviews (insurance_review_pharmacist)
DUTY_PHARMACIST = "xy-ph-duty"
#: a pharmacist who overrides the central review's findings
OVERRIDING_PHARMACIST = "xy-ph-override"

# The platform's side: (max length, required) per field, from the interface table of 7101/7103/7104.
SPEC: dict[str, dict[str, tuple[int, bool]]] = {
    "7101": {
        "mdtrt_cert_type": (3, True), "mdtrt_cert_no": (50, True), "biz_typecode": (2, True),
        "hosp_rxno": (40, True), "init_rxno": (40, False), "rx_type_code": (2, True), "prsc_time": (19, True),
        "rx_drug_cnt": (16, True), "rx_used_way_codg": (30, False), "rx_used_way_name": (100, False),
        "valid_days": (3, True), "valid_end_time": (19, True), "long_rx_flag": (3, True),
        "mdtrtinfo.fixmedins_code": (12, True), "mdtrtinfo.fixmedins_name": (200, True),
        "mdtrtinfo.mdtrt_id": (30, True), "mdtrtinfo.med_type": (6, True), "mdtrtinfo.psn_no": (30, True),
        "mdtrtinfo.patn_name": (50, True), "mdtrtinfo.certno": (50, True), "mdtrtinfo.gend": (6, True),
        "mdtrtinfo.dr_code": (30, True), "mdtrtinfo.prsc_dr_name": (50, True),
        "diseinfo[].diag_type": (3, True), "diseinfo[].diag_code": (30, True), "diseinfo[].diag_name": (100, True),
        "rxdrugdetail[].med_list_codg": (50, True), "rxdrugdetail[].fixmedins_hilist_id": (30, True),
        "rxdrugdetail[].drug_genname": (128, True), "rxdrugdetail[].drug_dosform": (40, True),
        "rxdrugdetail[].drug_spec": (200, True), "rxdrugdetail[].drug_cnt": (16, True),
        "rxdrugdetail[].drug_dosunt": (20, True), "rxdrugdetail[].medc_way_codg": (30, True),
        "rxdrugdetail[].medc_days": (16, True), "rxdrugdetail[].sin_doscnt": (16, False),
        "rxdrugdetail[].used_frqu_codg": (30, False), "rxdrugdetail[].bas_medn_flag": (3, False),
    },
    "7102": {
        "fixmedins_code": (12, True), "original_value": (1048576, True), "original_rx_file": (1048576, True),
        "extras": (4000, False),
    },
    "7103": {
        "rx_trace_code": (30, True), "hi_rxno": (30, True), "mdtrt_id": (30, True), "patn_name": (50, True),
        "psn_cert_type": (6, True), "certno": (50, True), "fixmedins_code": (12, True), "fixmedins_name": (200, True),
        "dr_code": (30, True), "prsc_dr_name": (50, True), "phar_dept_name": (50, True),
        "phar_dept_code": (30, True), "phar_profttl_codg": (20, False), "phar_profttl_name": (20, False),
        "phar_code": (20, True), "phar_cert_type": (6, False), "phar_certno": (50, False), "phar_name": (50, True),
        "phar_prac_cert_no": (50, False), "phar_chk_time": (19, True),
        "rx_file": (1048576, True), "sign_digest": (2048, True),
    },
    "7104": {
        "hi_rxno": (30, True), "fixmedins_code": (12, True), "dr_code": (30, True), "undo_dr_name": (50, True),
        "undo_dr_cert_type": (6, True), "undo_dr_certno": (50, False), "undo_rea": (200, True), "undo_time": (19, True),
    },
    "7105": {
        "fixmedins_code": (12, True), "hi_rxno": (30, True), "mdtrt_id": (30, True), "psn_name": (50, True),
        "psn_cert_type": (6, True), "certno": (50, True),
    },
}  # fmt: skip
SPEC["7106"] = SPEC["7105"]
#: what 7102 signs: 7103's fields but the signed file and the signature themselves
SIGNED_FIELDS = set(SPEC["7103"]) - {"rx_file", "sign_digest"}
ENVELOPE = ("infno", "msgid", "infver", "opter_type", "opter", "opter_name", "inf_time", "fixmedins_code", "input")


def flatten(node: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            for item in value:
                out.update(flatten(item, f"{prefix}{key}[]."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_message(message: dict[str, Any]) -> list[str]:
    problems = [f"envelope.{k} missing" for k in ENVELOPE if k not in message]
    if len(str(message.get("msgid", ""))) > 30:
        problems.append("msgid longer than 30")
    spec = SPEC.get(str(message.get("infno")))
    if spec is None:
        return [*problems, f"unknown infno {message.get('infno')}"]
    fields = flatten(message["input"])
    for name, value in fields.items():
        if name not in spec:
            problems.append(f"unknown field {name}")
        elif not isinstance(value, str) or len(value) > spec[name][0]:
            problems.append(f"{name}: {value!r} is not a string of at most {spec[name][0]}")
    problems += [f"{name} required" for name, (_, required) in spec.items() if required and not fields.get(name)]
    return problems


class Platform:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.refuse_certno: str | None = None
        self.refuse_query = False  # 7106 answers infcode -1
        self.fail_query = False  # 7105 answers HTTP 500
        self.key = secrets.token_bytes(32)  # the platform's signing key: the gateway never sees it
        self.signed: dict[str, tuple[dict[str, Any], str, str]] = {}  # hi_rxno -> (fields, rx_file, digest)
        self.lock = threading.Lock()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                message = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with platform.lock:
                    platform.messages.append(message)
                    platform.problems += check_message(message)
                    n = len(platform.messages)
                infno, data = message["infno"], message["input"]
                certno = data.get("mdtrtinfo", {}).get("certno")
                if infno == "7105" and platform.fail_query:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if infno == "7101" and certno and certno == platform.refuse_certno:
                    reply = {"infcode": -1, "err_msg": "参保人无有效待遇", "output": {}}
                elif infno == "7101":
                    reply = {"infcode": 0, "output": {"rxTraceCode": f"TRC{n:010d}", "hiRxno": f"HI{n:012d}"}}
                elif infno == "7102":
                    reply = platform.sign(data)
                elif infno == "7103":
                    reply = platform.verify(data)
                elif infno == "7105":
                    reply = {"infcode": 0, "output": {
                        "hiRxno": data["hi_rxno"], "fixmedinsCode": data["fixmedins_code"], "rxStasCodg": "1",
                        "rxStasName": "有效", "rxUsedStasCodg": "1", "rxUsedStasName": "已使用",
                    }}  # fmt: skip
                elif infno == "7106" and platform.refuse_query:
                    reply = {"infcode": -1, "err_msg": "未查询到该医保处方", "output": {}}
                elif infno == "7106":
                    reply = {"infcode": 0, "output": {
                        "hiRxno": data["hi_rxno"], "setlTime": "2026-12-02 10:15:00", "rxStasCodg": "1",
                        "rxStasName": "有效", "rxUsedStasCodg": "1", "rxUsedStasName": "已使用",
                        "fixmedinsCode": "P61010200001", "fixmedinsName": "西乡县康民大药房",
                        "seltdelts": [{"medListCodg": "XC09AAD123A001010101234", "drugGenname": "依那普利",
                                       "cnt": "28", "takeDrugFlag": "1"}],
                    }}  # fmt: skip
                else:
                    reply = {"infcode": 0, "output": {"hi_rxno": data["hi_rxno"], "rx_stas_codg": "2"}}
                body = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fsi/api/rxCirculation"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _digest(self, original_value: str) -> str:
        return hmac.new(self.key, original_value.encode(), hashlib.sha256).hexdigest()

    def sign(self, data: dict[str, Any]) -> dict[str, Any]:
        """7102: sign the upload fields, wrap the file; answered in camelCase as some provinces do."""
        fields = json.loads(base64.b64decode(data["original_value"]))
        required = {name for name in SIGNED_FIELDS if SPEC["7103"][name][1]}
        if not required <= set(fields) <= SIGNED_FIELDS:
            with self.lock:
                self.problems.append(f"7102 original_value signs {sorted(fields)}, not {sorted(SIGNED_FIELDS)}")
        rx_file = base64.b64encode(b"SIGNED-BY-STUB:" + base64.b64decode(data["original_rx_file"])).decode()
        digest = self._digest(data["original_value"])
        with self.lock:
            self.signed[str(fields.get("hi_rxno"))] = (fields, rx_file, digest)
        cert = {"signCertSn": "4F2A9C", "signCertDn": "CN=stub insurance CA"}
        return {"infcode": 0, "output": {"rxFile": rx_file, "signDigest": digest, **cert}}

    def verify(self, data: dict[str, Any]) -> dict[str, Any]:
        """7103: accepted only with the file and signature 7102 answered, for exactly what was signed."""
        with self.lock:
            signed = self.signed.get(data["hi_rxno"])
        uploaded = {k: v for k, v in data.items() if k not in ("rx_file", "sign_digest")}
        if signed is None:
            why = "7103 without a 7102 signature"
        elif data["sign_digest"] != signed[2] or data["rx_file"] != signed[1]:
            why = "7103 rx_file/sign_digest are not what 7102 answered"
        elif uploaded != signed[0]:
            why = "7103 uploads other fields than 7102 signed"
        else:
            return {"infcode": 0, "output": {"hi_rxno": data["hi_rxno"], "rx_stas_codg": "1"}}
        with self.lock:
            self.problems.append(why)
        return {"infcode": -1, "err_msg": why, "output": {}}

    def infnos(self) -> list[str]:
        with self.lock:
            return [m["infno"] for m in self.messages]


def _insurance_sub(endpoint: str, topic: str) -> dict[str, Any]:
    return subscription(
        endpoint,
        topic=topic,
        channelType={"system": "http://yaolian.org/fhir/CodeSystem/subscription-channel-type", "code": "insurance-rx"},
        content="id-only",
    )


def _rx(rx_id: str, patient: str, *, reviewer: str | None = None, reviewed: bool = True) -> dict[str, Any]:
    """A prescription the central review passed: by the rules alone (``reviewed``), or with a
    pharmacist's override (``reviewer``), or never reviewed."""
    drug = next(iter(DRUG_BY_ID.values()))
    rx = medication_request(
        rx_id,
        f"RX{rx_id}",
        patient,
        drug,
        "xy-dr-niu",
        "2026-12-01T09:30:00+08:00",
        28,
        ("I10.x00x002", "高血压", "hypertension"),
        reviewer=reviewer,
    )
    rx.pop("id")
    if reviewer is None and reviewed:
        automated = [
            {"url": "result", "valueCode": "pass"},
            {"url": "date", "valueDateTime": "2026-12-01T09:31:00+08:00"},
        ]
        rx["extension"].append({"url": REVIEW_URL, "extension": automated})
    return rx


def _pharmacist(service: FhirService, practitioner_id: str, name: str, code: str, certno: str | None) -> None:
    """A pharmacist with the national codes 7103 asks for, and a pharmacist role in a department."""
    identifiers = [{"system": SID + "nhsa-pharmacist-code", "value": code}]
    if certno is not None:
        identifiers.append({"system": RESIDENT_ID, "value": certno})
    title = {"system": "http://yaolian.org/fhir/CodeSystem/nhsa-pharmacist-title", "code": "3", "display": "主管药师"}
    practitioner = {
        "resourceType": "Practitioner",
        "id": practitioner_id,
        "identifier": identifiers,
        "active": True,
        "name": [{"text": name, "family": name[0], "given": [name[1:]]}],
        "qualification": [
            {
                "code": {"coding": [title]},
                "identifier": [{"system": SID + "pharmacist-practice-cert", "value": "ZY" + code}],
            }
        ],
    }
    role = {
        "resourceType": "PractitionerRole",
        "active": True,
        "practitioner": {"reference": f"Practitioner/{practitioner_id}"},
        "organization": {"reference": "Organization/xy-county-hospital"},
        "code": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/practitioner-role", "code": "pharmacist"}]}
        ],
        "specialty": [{"coding": [{"system": SID + "hosp-dept-codg", "code": "A50.04"}], "text": "药剂科"}],
    }

    def action(tx: Any) -> None:
        service.writer.update(tx, CTX, "Practitioner", practitioner_id, ResourceText.parse(orjson.dumps(practitioner)))
        service.writer.create(tx, CTX, "PractitionerRole", ResourceText.parse(orjson.dumps(role)))

    service.write(CTX, action)


def _pharmacists(service: FhirService) -> None:
    _pharmacist(service, DUTY_PHARMACIST, "赵志刚", "HY140423000103", "140423198001011232")
    _pharmacist(service, OVERRIDING_PHARMACIST, "孙晓燕", "HY140423000104", None)


def _finding_on(service: FhirService, rx_id: str) -> dict[str, Any] | None:
    reference = f"MedicationRequest/{rx_id}"
    return next((f for f in _findings(service) if f["implicated"][0]["reference"] == reference), None)


def _identifiers(service: FhirService, rx_id: str) -> dict[str, str]:
    data = orjson.loads(service.read("MedicationRequest", rx_id, CTX).body or b"{}")
    return {i["system"]: i["value"] for i in data.get("identifier", [])}


def _findings(service: FhirService) -> list[dict[str, Any]]:
    return [orjson.loads(r.body) for r in service.find("DetectedIssue", [], CTX) if r.body]


def test_prescriptions_are_uploaded_and_revoked_in_the_platforms_format(database_url: str, platform: Platform) -> None:
    load_demo(database_url)
    with gateway(_settings(database_url, insurance_review_pharmacist=DUTY_PHARMACIST)) as (service, _, _):
        _pharmacists(service)
        write(service, _insurance_sub(platform.url, "prescription-created"))
        write(service, _insurance_sub(platform.url, "prescription-changed"))
        platform.refuse_certno = None
        accepted = write(service, _rx("a", "xy-pat-zhang-guifang"))
        ok = wait_for(lambda: "http://yaolian.org/fhir/sid/hi-rxno" in _identifiers(service, accepted))
        assert ok, [f["detail"] for f in _findings(service)]
        numbers = _identifiers(service, accepted)
        assert numbers["http://yaolian.org/fhir/sid/hi-rxno"].startswith("HI")
        assert numbers["http://yaolian.org/fhir/sid/rx-trace-code"].startswith("TRC")
        assert platform.infnos()[:3] == ["7101", "7102", "7103"]
        upload = platform.messages[2]["input"]
        assert upload["sign_digest"] == platform.signed[upload["hi_rxno"]][2]
        assert base64.b64decode(upload["rx_file"]).startswith(b"SIGNED-BY-STUB:")
        first = platform.messages[0]["input"]
        assert first["mdtrtinfo"]["patn_name"] == "张桂芳" and first["mdtrtinfo"]["gend"] == "2"
        assert first["rxdrugdetail"][0]["drug_genname"] and first["prsc_time"] == "2026-12-01 09:30:00"
        assert first["valid_end_time"] == "2026-12-04 09:30:00"
        # reviewed by the rules alone: the configured responsible pharmacist, at the review's time
        assert upload["phar_code"] == "HY140423000103" and upload["phar_name"] == "赵志刚"
        assert upload["phar_cert_type"] == "01" and upload["phar_certno"] == "140423198001011232"
        assert upload["phar_dept_code"] == "A50.04" and upload["phar_dept_name"] == "药剂科"
        assert upload["phar_chk_time"] == "2026-12-01 09:31:00"

        # revoked: 7104 with the number the platform gave
        current = orjson.loads(service.read("MedicationRequest", accepted, CTX).body or b"{}")
        current["status"] = "cancelled"
        current["statusReason"] = {"text": "患者要求撤销"}
        body = ResourceText.parse(orjson.dumps(current))
        service.write(CTX, lambda tx: service.writer.update(tx, CTX, "MedicationRequest", accepted, body))
        assert wait_for(lambda: "7104" in platform.infnos())
        revoke = next(m for m in platform.messages if m["infno"] == "7104")["input"]
        assert revoke["hi_rxno"] == numbers["http://yaolian.org/fhir/sid/hi-rxno"]
        assert revoke["undo_rea"] == "患者要求撤销"

        # refused by the platform: a finding on the prescription, no upload
        patient = orjson.loads(service.read("Patient", REFUSED_PATIENT, CTX).body or b"{}")
        platform.refuse_certno = next(i["value"] for i in patient["identifier"] if "2.16.156.10011.1.3" in i["system"])
        refused = write(service, _rx("b", REFUSED_PATIENT))
        assert wait_for(
            lambda: any(f["implicated"][0]["reference"] == f"MedicationRequest/{refused}" for f in _findings(service))
        )
        finding = next(
            f for f in _findings(service) if f["implicated"][0]["reference"] == f"MedicationRequest/{refused}"
        )
        assert finding["code"]["coding"][0]["code"] == "YL-1306" and "参保人无有效待遇" in finding["code"]["text"]
        assert "http://yaolian.org/fhir/sid/hi-rxno" not in _identifiers(service, refused)

        # a prescription the mapping cannot fill (no prescriber): a finding naming the field, nothing sent
        sent = len(platform.messages)
        broken = _rx("c", "xy-pat-wang-xiulan")
        broken.pop("requester")
        unfilled = write(service, broken)
        assert wait_for(
            lambda: any(f["implicated"][0]["reference"] == f"MedicationRequest/{unfilled}" for f in _findings(service))
        )
        finding = next(
            f for f in _findings(service) if f["implicated"][0]["reference"] == f"MedicationRequest/{unfilled}"
        )
        assert finding["code"]["coding"][0]["code"] == "YL-1307" and "mdtrtinfo.dr_code" in finding["detail"]
        assert len(platform.messages) == sent
        assert platform.problems == []


def test_the_upload_names_the_pharmacist_who_overrode_the_review_pol_18(database_url: str, platform: Platform) -> None:
    """POL-18 with POL-06: a pharmacist's override of the central review names them at 7103 (not
    the configured one); their title, practice certificate and department come along, and the
    signed fields (7102) are the uploaded ones. A prescription never reviewed names nobody:
    a finding naming the pharmacist's fields and the review time, nothing sent."""
    load_demo(database_url)
    with gateway(_settings(database_url, insurance_review_pharmacist=DUTY_PHARMACIST)) as (service, _, _):
        _pharmacists(service)
        write(service, _insurance_sub(platform.url, "prescription-created"))
        overridden = write(service, _rx("d", "xy-pat-zhang-guifang", reviewer=OVERRIDING_PHARMACIST))
        ok = wait_for(lambda: "http://yaolian.org/fhir/sid/hi-rxno" in _identifiers(service, overridden))
        assert ok, [f["detail"] for f in _findings(service)]
        assert platform.infnos() == ["7101", "7102", "7103"]
        upload = platform.messages[2]["input"]
        assert upload["phar_code"] == "HY140423000104" and upload["phar_name"] == "孙晓燕"
        assert upload["phar_profttl_codg"] == "3" and upload["phar_profttl_name"] == "主管药师"
        assert upload["phar_prac_cert_no"] == "ZYHY140423000104"
        assert upload["phar_dept_name"] == "药剂科" and upload["phar_chk_time"] == "2026-12-01 10:30:00"
        assert "phar_certno" not in upload and "phar_cert_type" not in upload  # no ID number on file: left out
        signed = json.loads(base64.b64decode(platform.messages[1]["input"]["original_value"]))
        assert {k: v for k, v in upload.items() if k not in ("rx_file", "sign_digest")} == signed

        unreviewed = write(service, _rx("e", "xy-pat-wang-xiulan", reviewed=False))
        assert wait_for(lambda: _finding_on(service, unreviewed) is not None)
        finding = _finding_on(service, unreviewed) or {}
        assert finding["code"]["coding"][0]["code"] == "YL-1307"
        for field in ("phar_code", "phar_name", "phar_dept_name", "phar_chk_time"):
            assert f"input.{field}:" in finding["detail"], finding["detail"]
        assert platform.infnos() == ["7101", "7102", "7103"]
        assert platform.problems == []


def test_no_reviewing_pharmacist_and_none_configured_sends_nothing_pol_18(
    database_url: str, platform: Platform
) -> None:
    """POL-18: a prescription the rules passed alone, in an alliance that configured no
    responsible pharmacist, has nobody to name at 7103: YL-1307 naming the pharmacist's fields
    (not the review time, which it has), and not even the 7101 pre-check is sent."""
    load_demo(database_url)
    with gateway(_settings(database_url)) as (service, _, _):
        _pharmacists(service)
        write(service, _insurance_sub(platform.url, "prescription-created"))
        automated = write(service, _rx("f", "xy-pat-zhang-guifang"))
        assert wait_for(lambda: _finding_on(service, automated) is not None)
        finding = _finding_on(service, automated) or {}
        assert finding["code"]["coding"][0]["code"] == "YL-1307" and "7103" in finding["detail"]
        for field in ("phar_dept_name", "phar_dept_code", "phar_code", "phar_name"):
            assert f"input.{field}:" in finding["detail"], finding["detail"]
        assert "phar_chk_time" not in finding["detail"] and "phar_certno" not in finding["detail"]
        assert platform.messages == []
        assert "http://yaolian.org/fhir/sid/hi-rxno" not in _identifiers(service, automated)


@pytest.mark.parametrize("configured", [None, "xy-ph-nobody", f"Practitioner/{DUTY_PHARMACIST}"])
def test_who_reviewed_a_prescription_pol_06(tmp_path: Any, configured: str | None) -> None:
    """POL-06 (central review) as POL-18 needs it: an override's reviewer wins, also when it names
    the pharmacist's role (its practitioner, and that role for the department); a review the
    rules passed alone names the configured pharmacist (an id or a reference) - nobody when none
    is configured or it names no Practitioner; a prescription never reviewed, or whose automated
    review left findings (warn) no pharmacist overrode, names nobody."""
    settings = _settings(f"sqlite:///{tmp_path / 'y.sqlite'}", insurance_review_pharmacist=configured)
    store = open_store(settings.database)
    store.create_schema()
    service = FhirService(store, settings)
    try:
        _pharmacists(service)
        role = next(
            r
            for r in service.find("PractitionerRole", [("practitioner", f"Practitioner/{OVERRIDING_PHARMACIST}")], CTX)
        )

        def read(reference: Any) -> dict[str, Any] | None:
            found = service.read_reference(str((reference or {}).get("reference")), CTX)
            return orjson.loads(found.body) if found is not None and found.body else None

        def who(rx: dict[str, Any]) -> tuple[str | None, str | None]:
            phar, phar_role = reviewing_pharmacist(service, rx, CTX, read)
            return phar.get("id"), (phar_role.get("practitioner") or {}).get("reference")

        by_role = _rx("g", "p", reviewer=OVERRIDING_PHARMACIST)
        by_role["extension"][-1]["extension"][1]["valueReference"] = {"reference": f"PractitionerRole/{role.res_id}"}
        overriding = f"Practitioner/{OVERRIDING_PHARMACIST}"
        assert who(_rx("g", "p", reviewer=OVERRIDING_PHARMACIST)) == (OVERRIDING_PHARMACIST, overriding)
        assert who(by_role) == (OVERRIDING_PHARMACIST, overriding)
        expected = (
            (DUTY_PHARMACIST, f"Practitioner/{DUTY_PHARMACIST}")
            if configured and "duty" in configured
            else (None, None)
        )
        assert who(_rx("g", "p")) == expected
        assert who(_rx("g", "p", reviewed=False)) == (None, None)
        warned = _rx("g", "p")
        warned["extension"][-1]["extension"][0]["valueCode"] = "warn"  # findings no pharmacist has seen
        assert who(warned) == (None, None)
    finally:
        store.dispose()

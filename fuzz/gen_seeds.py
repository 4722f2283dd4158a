#!/usr/bin/env python3
"""Regenerates the seed corpora under fuzz/corpus/<target>/ (python3, standard library only).

Seeds come from the crates' tests: the AWS documentation and botocore SigV4 vectors and the
streaming example (crates/coffer-sigv4/src/tests.rs), policy documents from
crates/coffer-policy/tests/*.rs, S3 XML bodies as botocore sends them. Run from anywhere:
    python3 fuzz/gen_seeds.py
Existing seed files are replaced; files libFuzzer added elsewhere are not touched.
"""
import hashlib, hmac, json, os, re, struct, shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def reset(target):
    shutil.rmtree(os.path.join(CORPUS, target), ignore_errors=True)


# ------------------------------------------------------------------ sigv4_parse
def req(method, target, headers):
    return "\n".join([method, target] + [f"{k}: {v}" for k, v in headers]) + "\n"

E = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SIG0 = "0" * 64
GOOD_CRED = "Credential=AK/20130524/us-east-1/s3/aws4_request"
reset("sigv4_parse")
seeds = {
    "aws_iam": req("GET", "/?Action=ListUsers&Version=2010-05-08", [
        ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
        ("host", "iam.amazonaws.com"), ("x-amz-date", "20150830T123600Z"),
        ("authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")]),
    "aws_s3_get": req("GET", "/test.txt", [
        ("host", "examplebucket.s3.amazonaws.com"), ("range", "bytes=0-9"),
        ("x-amz-content-sha256", E), ("x-amz-date", "20130524T000000Z"),
        ("authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")]),
    "aws_s3_presigned": req("GET", "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404", [
        ("host", "examplebucket.s3.amazonaws.com")]),
    "aws_s3_stream": req("PUT", "/examplebucket/chunkObject.txt", [
        ("host", "s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"),
        ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        ("content-encoding", "aws-chunked"), ("x-amz-decoded-content-length", "66560"),
        ("content-length", "66824")]),
    "botocore_kms_token": req("POST", "/", [
        ("host", "localhost:4566"), ("x-amz-target", "TrentService.Encrypt"),
        ("content-type", "application/x-amz-json-1.1"), ("user-agent", "Boto3/1.0"),
        ("x-amz-date", "20240315T102030Z"), ("x-amz-security-token", "FQoGZXIvYXdzEXAMPLETOKEN//+=="),
        ("authorization", "AWS4-HMAC-SHA256 Credential=ASIABOTOCORE/20240315/eu-west-1/kms/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=6d029d70c45f274c82b3ca50af45df51f0d3ef6b428c9b474980207639b03de4")]),
    "botocore_iam_dots": req("POST", "/a/./b/../c//d/", [
        ("host", "coffer.local:8443"),
        ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
        ("x-amz-date", "20240315T102030Z"),
        ("authorization", "AWS4-HMAC-SHA256 Credential=AKIDBOTOCORE/20240315/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=9aaf49c6e7dd3b9a03655c0dc8c724915dc6f44a85853c3d7cf6f3b44a886415")]),
    "botocore_s3_put": req("PUT", "/my-bucket/dir/a%20b%2Bc~d%21.txt?partNumber=2&uploadId=abc%2Fdef%20g", [
        ("host", "127.0.0.1:9000"), ("content-type", "text/plain"),
        ("x-amz-meta-foo", "  spaced    value  "), ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
        ("x-amz-date", "20240315T102030Z"),
        ("x-amz-content-sha256", hashlib.sha256(b"hello world").hexdigest()),
        ("authorization", "AWS4-HMAC-SHA256 Credential=AKIDBOTOCORE/20240315/us-east-1/s3/aws4_request, SignedHeaders=content-md5;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-foo, Signature=74927689eda1a782b382dec6280cf9c3405f92e441e3896e4c49e2175c85426e")]),
    "botocore_presigned_token": req("GET", "https://my-bucket.s3.coffer.local/some/key%20with%20space?versionId=v1&response-content-type=text%2Fplain&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIABOTOCORE%2F20240315%2Fus-west-2%2Fs3%2Faws4_request&X-Amz-Date=20240315T102030Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLETOKEN%2F%2F%2B%3D%3D&X-Amz-Signature=9132b0f08c6d1ac94e293a745ac2b5abeaea2d58561f239f7cab5b0fee7a2978", []),
    "date_header": req("GET", "/", [
        ("host", "kms.local"), ("date", "Sat, 01 Jun 2024 12:00:00 GMT"),
        ("authorization", f"AWS4-HMAC-SHA256 Credential=AKID/20240601/us-east-1/kms/aws4_request, SignedHeaders=date;host, Signature={SIG0}")]),
    "plus_query": req("GET", "/b/k?q=a+b&x=%2B&&y", [("host", "h")]),
    "tolerated_spacing": req("GET", "/", [
        ("x-amz-date", "20130524T000000Z"),
        ("authorization", f"AWS4-HMAC-SHA256  {GOOD_CRED},SignedHeaders=host ,  Signature={'AB' * 32}")]),
    "malformed_sigheaders": req("GET", "/", [
        ("x-amz-date", "20130524T000000Z"),
        ("authorization", f"AWS4-HMAC-SHA256 {GOOD_CRED}, SignedHeaders=host;;x, Signature={SIG0}")]),
    "sigv2_header": req("GET", "/", [
        ("authorization", "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=")]),
    "sigv2_query": req("GET", "/b/k?AWSAccessKeyId=AK&Expires=1&Signature=abc", []),
    "presigned_dup": req("GET", "/t?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=604800&X-Amz-SignedHeaders=host%3Bx-amz-content-sha256&X-Amz-Signature=" + SIG0 + "&X-Amz-Date=20130524T000000Z", [("x-amz-content-sha256", E)]),
    "anonymous": req("DELETE", "/bucket/key?versionId=1&uploads", [("host", "s3.local"), ("x-amz-meta-a", "b")]),
}
for k, v in seeds.items():
    write("sigv4_parse", k, v)

# ------------------------------------------------------------------ sigv4_chunked
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
DATE = "20130524T000000Z"
SCOPE = "20130524/us-east-1/s3/aws4_request"


def h(k, m):
    return hmac.new(k, m.encode() if isinstance(m, str) else m, hashlib.sha256).digest()


KEY = h(h(h(h(("AWS4" + SECRET).encode(), "20130524"), "us-east-1"), "s3"), "aws4_request")


def signed_body(chunks, trailers=None):
    prev, out = SEED, b""
    for c in list(chunks) + [b""]:
        sts = f"AWS4-HMAC-SHA256-PAYLOAD\n{DATE}\n{SCOPE}\n{prev}\n{E}\n{hashlib.sha256(c).hexdigest()}"
        prev = hmac.new(KEY, sts.encode(), hashlib.sha256).hexdigest()
        out += f"{len(c):x};chunk-signature={prev}\r\n".encode() + c + (b"\r\n" if c else b"")
    if trailers is not None:
        canon = "".join(f"{n}:{v}\n" for n, v in trailers)
        for n, v in trailers:
            out += f"{n}:{v}\r\n".encode()
        sts = f"AWS4-HMAC-SHA256-TRAILER\n{DATE}\n{SCOPE}\n{prev}\n{hashlib.sha256(canon.encode()).hexdigest()}"
        out += f"x-amz-trailer-signature:{hmac.new(KEY, sts.encode(), hashlib.sha256).hexdigest()}\r\n".encode()
    return out + b"\r\n"


reset("sigv4_chunked")
# raw scenarios: byte0 = mode (0 signed, 1 signed+trailer, 2 unsigned; |8 = decoded length), byte1 = split
write("sigv4_chunked", "signed_two_chunks", bytes([0, 255]) + signed_body([b"a" * 40, b"b" * 7]))
write("sigv4_chunked", "signed_bytewise", bytes([0, 0]) + signed_body([b"hello"]))
write("sigv4_chunked", "signed_len", bytes([8, 5]) + struct.pack("<I", 12) + signed_body([b"hello world!"]))
write("sigv4_chunked", "signed_trailer", bytes([1, 3]) + signed_body([b"x" * 20], [("x-amz-checksum-crc32", "sOO8/Q==")]))
write("sigv4_chunked", "signed_empty", bytes([0, 255]) + signed_body([]))
write("sigv4_chunked", "unsigned_botocore", bytes([2, 1]) + b"4\r\nhell\r\n4\r\no wo\r\n3\r\nrld\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n")
write("sigv4_chunked", "unsigned_len_short", bytes([10, 255]) + struct.pack("<I", 3) + b"2\r\nab\r\n0\r\n\r\n")
write("sigv4_chunked", "unsigned_bad_size", bytes([2, 255]) + b"zz\r\n")
write("sigv4_chunked", "unsigned_no_crlf", bytes([2, 2]) + b"2\r\nabXY")
write("sigv4_chunked", "unsigned_many_trailers", bytes([2, 9]) + b"0\r\n" + b"".join(f"t{i}:v\r\n".encode() for i in range(33)) + b"\r\n")
write("sigv4_chunked", "long_line", bytes([2, 200]) + b"1" * 4200)
# encoder round trips: byte0 = 3 | mode<<2, byte1 = split, nchunks, (len, data)*, ntrailers, (len, name, len, value)*, flip_at(2), flip, with_len
def rt(mode, split, chunks, trailers, flip=(0, 0), with_len=0):
    b = bytes([3 | (mode << 2), split, len(chunks)])
    for c in chunks:
        b += bytes([len(c)]) + c
    b += bytes([len(trailers)])
    for n, v in trailers:
        b += bytes([len(n)]) + bytes(ord(x) % 37 for x in n) + bytes([len(v)]) + v.encode()
    return b + struct.pack("<H", flip[0]) + bytes([flip[1], with_len])
write("sigv4_chunked", "rt_signed", rt(0, 7, [b"abc", b"defgh"], []))
write("sigv4_chunked", "rt_signed_trailer", rt(1, 0, [b"0123456789"], [("crc", "AAAA")], with_len=1))
write("sigv4_chunked", "rt_unsigned_flip", rt(2, 4, [b"hello", b"world"], [("x", "y"), ("z", " w ")], flip=(12, 1)))

# ------------------------------------------------------------------ policy
reset("policy")
docs = []
for f in sorted(os.listdir(os.path.join(ROOT, "crates/coffer-policy/tests"))):
    src = open(os.path.join(ROOT, "crates/coffer-policy/tests", f)).read()
    for m in re.finditer(r'r#"(\{.*?\})"#', src, re.S):
        t = m.group(1)
        if "{{" in t:  # a format! string
            t = t.replace("{{", "{").replace("}}", "}")
            if re.search(r"\{[a-z_]+\}", t):
                continue
        try:
            j = json.loads(t)
        except ValueError:
            continue
        if not isinstance(j, dict):
            continue
        if "Statement" not in j:
            if "Effect" in j:  # a statement
                t = '{"Version":"2012-10-17","Statement":[' + t + ']}'
            else:  # a condition block
                t = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*",'
                     '"Resource":"*","Condition":' + t + '}]}')
        if t not in docs:
            docs.append(t)
# Prefer variety: keep those covering distinct operators, keys and elements first.
chosen, seen = [], set()
def features(t):
    return set(re.findall(r'"([A-Za-z:${}*/-]+)"', t))
for t in sorted(docs, key=lambda t: -len(features(t))):
    if features(t) - seen or len(chosen) < 12:
        chosen.append(t)
        seen |= features(t)
    if len(chosen) >= 30:
        break
for i, t in enumerate(chosen):
    write("policy", f"test_{i:02}.json", t)
write("policy", "glob_1", b"\x01arn:aws:s3:::b/*a?c*\narn:aws:s3:::b/xxabc/yy")
write("policy", "glob_2", b"\x01*a*b*c*\nxxaxxcxxbxx")

# ------------------------------------------------------------------ kms_blob
reset("kms_blob")
write("kms_blob", "raw_short", b"\x00\x01" + b"\x07" * 20)
write("kms_blob", "raw_overhead", b"\x00\x01" + bytes(range(16)) + b"\x00\x00\x00\x03" + b"\x11" * 16 + b"\x22" * 12 + b"ct" + b"\x33" * 16)
write("kms_blob", "raw_wrap_v2", b"\x00\x02" + b"\x44" * 32 + b"\x55" * 12 + b"\x66" * 20)
write("kms_blob", "raw_wrap_v1", b"\x00\x01" + b"\x55" * 12 + b"\x66" * 16)
def seal_seed(key_id, mv, pairs, flip_at, flip, cut, pt):
    b = b"\x01" + key_id + struct.pack("<I", mv) + bytes([len(pairs)])
    for k, v in pairs:
        b += bytes([len(k)]) + k + bytes([len(v)]) + v
    return b + struct.pack("<H", flip_at) + bytes([flip]) + struct.pack("<H", cut) + pt
write("kms_blob", "seal_ctx", seal_seed(bytes(range(16)), 3, [(b"team", b"blue"), (b"a", b"1")], 5, 1, 10, b"hello kms"))
write("kms_blob", "seal_empty", seal_seed(b"\x07" * 16, 0, [], 0, 0x80, 0, b""))
write("kms_blob", "seal_long", seal_seed(b"\xff" * 16, 0xffffffff, [(b"ab", b"c")], 300, 2, 77, bytes(range(256))))

# ------------------------------------------------------------------ segment
reset("segment")
hdr = lambda seg: b"\x01" + struct.pack(">I", seg) + b"\x5a" * 32 + b"\xa5" * 7
write("segment", "raw_header_only", b"\x00\x00" + hdr(16))
write("segment", "raw_two_segments", b"\x00\x07" + hdr(16) + b"\x01" * 32 + b"\x02" * 20)
write("segment", "raw_bad_size", b"\x00\xff" + b"\x01" + struct.pack(">I", 15) + b"\x00" * 60)
write("segment", "raw_big_size", b"\x00\x03" + hdr(16 << 20) + b"\x09" * 40)
def rt_seg(seg, split, flip_at, flip, cut, pt):
    return b"\x01" + bytes([seg - 16, split]) + struct.pack("<H", flip_at) + bytes([flip]) + struct.pack("<H", cut) + pt
write("segment", "rt_empty", rt_seg(16, 255, 0, 1, 0, b""))
write("segment", "rt_exact", rt_seg(16, 3, 50, 0x80, 44 + 32, bytes(range(32))))
write("segment", "rt_multi", rt_seg(23, 0, 7, 4, 100, bytes(range(200))))
write("segment", "layout_small", b"\x02" + struct.pack("<I", 0) + struct.pack("<Q", 50) + struct.pack("<QQQ", 3, 49, 120))
write("segment", "layout_big", b"\x02" + struct.pack("<I", 65536 - 16) + struct.pack("<Q", 5 << 40) + struct.pack("<QQQ", 1 << 33, 7, 1 << 45))

# ------------------------------------------------------------------ iam_query
reset("iam_query")
for name, body in {
    "list_users": "Action=ListUsers&Version=2010-05-08&MaxItems=10&Marker=abc",
    "tag_user": "Action=TagUser&UserName=bob&Tags.member.1.Key=k1&Tags.member.1.Value=v1&Tags.member.2.Key=k2&Tags.member.2.Value=",
    "untag": "Action=UntagUser&UserName=bob&TagKeys.member.1=a&TagKeys.member.10=j&TagKeys.member.2=b",
    "create_policy": "Action=CreatePolicy&PolicyName=p&PolicyDocument=%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D&Path=%2Fa%2F",
    "assume_role": "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2FR&RoleSessionName=s&DurationSeconds=+900&PolicyArns.member.1.arn=arn%3Ax&Tags.member.1.Key=a&TransitiveTagKeys.member.1=a",
    "bools": "Action=ListPolicies&OnlyAttached=TRUE&Scope=Local&MaxItems=abc&PasswordResetRequired=maybe",
    "dup_and_xamz": "UserName=a&UserName=b&X-Amz-Date=20240101T000000Z&X-Amz-Signature=x&A.member.01=z&A.member.1=y&A.member.4294967296=q",
    "with_query": "Action=GetUser\x00UserName=carol&Version=2010-05-08",
    "nested": "Action=X&Filters.member.1.Name=n&Filters.member.1.Values.member.1=v&Filters.member.1.Values.member.2=w",
    "weird_encoding": "%E2%82%AC=%FF%FE&=&&a&b=c=d&%zz=%",
}.items():
    write("iam_query", name, body)

# ------------------------------------------------------------------ s3_xml
reset("s3_xml")
NS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
for name, body in {
    "complete_mpu": f'<CompleteMultipartUpload{NS}><Part><ETag>"a54357aff0632cce46d942af68356b38"</ETag><PartNumber>1</PartNumber></Part><Part><ETag>"0c78aef83f66abc1fa1e8477f296d394"</ETag><PartNumber>2</PartNumber><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part></CompleteMultipartUpload>',
    "complete_mpu_empty": "<CompleteMultipartUpload/>",
    "delete_quiet": f"<Delete{NS}><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object><Object><Key>c</Key><VersionId>v1</VersionId></Object></Delete>",
    "delete_entities": "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Delete><Object><Key>&lt;x&gt;&#x41;&#66;&quot;&apos;</Key></Object></Delete>",
    "tagging": "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag><Tag><Key>c</Key><Value></Value></Tag></TagSet></Tagging>",
    "tagging_ns": f"<Tagging{NS}><TagSet/></Tagging>",
    "sse_kms": "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>alias/my-s3-encryption-key</KMSMasterKeyID></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>",
    "sse_aes": f"<ServerSideEncryptionConfiguration{NS}><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>",
    "versioning": f"<VersioningConfiguration{NS}><Status>Enabled</Status></VersioningConfiguration>",
    "versioning_mfa": "<VersioningConfiguration><MfaDelete>Disabled</MfaDelete><Status>Suspended</Status></VersioningConfiguration>",
    "create_bucket": f"<CreateBucketConfiguration{NS}><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>",
    "cdata_comment": "<!-- c --><Tagging><TagSet><Tag><Key><![CDATA[k<&>]]></Key><Value>v</Value></Tag></TagSet></Tagging><!-- d -->",
}.items():
    write("s3_xml", name, body)

for t in sorted(os.listdir(CORPUS)):
    print(f"{t}: {len(os.listdir(os.path.join(CORPUS, t)))} seeds")

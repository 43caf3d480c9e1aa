#!/usr/bin/env python3
"""A local stand-in for the Hugging Face Hub's file endpoints, for tests/hub (no network in tests).

It answers as huggingface.co answers huggingface_hub (file_download.py):
  HEAD/GET /{repo}/resolve/{revision}/{file}
    small files: 200, X-Repo-Commit, ETag "<git blob sha1>", Content-Length, the bytes (Range too)
    LFS files (*.safetensors): 302 to /cdn/<sha256> on --cdn-host (another host, as the real CDN),
      X-Linked-Etag "<sha256>", X-Linked-Size, X-Repo-Commit
  GET/HEAD /cdn/<sha256>: the bytes, Range supported; refuses a request carrying Authorization
    (a signed S3 URL refuses a second credential)
  errors: gated repo without the token 401 (X-Error-Code GatedRepo), wrong token 403 GatedRepo,
    unknown repo 401 (404 with a token) RepoNotFound, unknown revision 404 RevisionNotFound,
    unknown file 404 EntryNotFound (with X-Repo-Commit), a renamed repo 307 to a relative path.
Fault modes (--fault MODE:REPO:FILE): drop (the first GET sends half the bytes and closes), stall
(the first GET sends half, then waits 3 s and closes), corrupt (every GET has one byte changed),
ignore-range (every GET answers 200 with the whole file).

Usage: fake_hub.py --port-file F --log F [--cdn-host localhost] --repo ID[@BRANCH]=DIR ...
         [--edit ID[@BRANCH]:NAME=TEXT] [--remove ID[@BRANCH]:NAME] [--shard ID[@BRANCH]]
         [--gated ID=TOKEN] [--renamed OLD=NEW] [--fault MODE:REPO:FILE]
One server can hold every repo a test suite needs: faults belong to one repo's file.
It writes {"port": P, "commits": {repo: {branch: sha}}} to --port-file once it listens, and logs
every request as one JSON line {"method", "path", "range", "auth"} to --log.
Python standard library only.
"""
import argparse
import hashlib
import http.server
import json
import os
import socket
import struct
import threading
import time
import urllib.parse


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def split_safetensors(data, parts=2):
    """model.safetensors -> shards of whole tensors + the index, as save_pretrained shards."""
    header_len = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + header_len])
    body = data[8 + header_len:]
    metadata = header.pop("__metadata__", None)
    names = sorted(header, key=lambda n: header[n]["data_offsets"][0])
    groups = [names[i::parts] for i in range(parts)]
    files, weight_map = {}, {}
    for i, group in enumerate(groups):
        name = "model-%05d-of-%05d.safetensors" % (i + 1, parts)
        new_header, chunks, offset = {}, [], 0
        for t in group:
            begin, end = header[t]["data_offsets"]
            chunks.append(body[begin:end])
            new_header[t] = dict(header[t], data_offsets=[offset, offset + end - begin])
            offset += end - begin
            weight_map[t] = name
        if metadata is not None:
            new_header["__metadata__"] = metadata
        text = json.dumps(new_header).encode()
        text += b" " * (-len(text) % 8)
        files[name] = struct.pack("<Q", len(text)) + text + b"".join(chunks)
    index = {"metadata": {"total_size": sum(len(b) for b in files.values())}, "weight_map": weight_map}
    files["model.safetensors.index.json"] = json.dumps(index, indent=2).encode()
    return files


class Hub:
    def __init__(self, args):
        self.repos = {}       # repo -> branch -> {"sha": ..., "files": {name: bytes}}
        self.gated = dict(g.split("=", 1) for g in args.gated)
        self.renamed = dict(r.split("=", 1) for r in args.renamed)
        self.faults = {}      # (repo, file name) -> mode
        for f in args.fault:
            mode, repo, name = f.split(":", 2)
            self.faults[(repo, name)] = mode
        self.served = set()   # (repo, file) whose one-time fault has happened
        self.lock = threading.Lock()
        for spec in args.repo:
            ident, directory = spec.split("=", 1)
            repo, _, branch = ident.partition("@")
            files = {}
            for name in sorted(os.listdir(directory)):
                path = os.path.join(directory, name)
                if os.path.isfile(path):
                    with open(path, "rb") as fh:
                        files[name] = fh.read()
            self.repos.setdefault(repo, {})[branch or "main"] = {"files": files, "repo": repo}
        for spec in args.edit:
            ident, text = spec.split("=", 1)
            where, name = ident.split(":", 1)
            repo, _, branch = where.partition("@")
            self.repos[repo][branch or "main"]["files"][name] = text.encode()
        for spec in args.remove:
            where, name = spec.split(":", 1)
            repo, _, branch = where.partition("@")
            del self.repos[repo][branch or "main"]["files"][name]
        for spec in args.shard:
            repo, _, branch = spec.partition("@")
            files = self.repos[repo][branch or "main"]["files"]
            files.update(split_safetensors(files.pop("model.safetensors")))
        self.blobs = {}       # (repo, sha256) -> (file name, bytes)
        for repo, branches in self.repos.items():
            for branch, commit in branches.items():
                digest = hashlib.sha1(repo.encode() + b"@" + branch.encode())
                for name, data in sorted(commit["files"].items()):
                    digest.update(name.encode() + hashlib.sha256(data).digest())
                    if self.is_lfs(name):
                        self.blobs[(repo, hashlib.sha256(data).hexdigest())] = (name, data)
                commit["sha"] = digest.hexdigest()

    @staticmethod
    def is_lfs(name):
        return name.endswith(".safetensors")

    def commit(self, repo, revision):
        for branch, commit in self.repos[repo].items():
            if revision in (branch, commit["sha"]):
                return commit
        return None

    def fault_for(self, repo, name):
        """The fault to play on this GET of `name` in `repo`, if any (one-time modes only once)."""
        mode = self.faults.get((repo, name))
        if mode in ("drop", "stall"):
            with self.lock:
                if (repo, name) in self.served:
                    return None
                self.served.add((repo, name))
        return mode


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub = None
    log_file = None
    cdn_base = None

    def log_message(self, fmt, *args):  # quiet: the JSON log is the record
        pass

    def log_request_line(self):
        entry = {"method": self.command, "path": self.path, "range": self.headers.get("Range"),
                 "auth": self.headers.get("Authorization")}
        with Handler.hub.lock, open(Handler.log_file, "a") as log:
            log.write(json.dumps(entry) + "\n")

    def do_HEAD(self):
        self.handle_any(head=True)

    def do_GET(self):
        self.handle_any(head=False)

    def reply(self, status, headers=(), body=b"", head=False):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self.close_connection = True

    def error(self, status, code, message, head, extra=()):
        self.reply(status, [("X-Error-Code", code), ("X-Error-Message", message)] + list(extra),
                   json.dumps({"error": message}).encode(), head)

    def handle_any(self, head):
        self.log_request_line()
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/cdn/"):
            repo, _, sha256 = path[len("/cdn/"):].rpartition("/")
            return self.serve_cdn(urllib.parse.unquote(repo), sha256, head)
        if "/resolve/" not in path:
            return self.error(404, "NotFound", "no such endpoint", head)
        repo, rest = path.split("/resolve/", 1)
        repo = urllib.parse.unquote(repo.lstrip("/"))
        revision_q, _, file_q = rest.partition("/")
        revision, name = urllib.parse.unquote(revision_q), urllib.parse.unquote(file_q)
        hub = Handler.hub
        if repo in hub.renamed:
            target = "/%s/resolve/%s/%s" % (hub.renamed[repo], revision_q, file_q)
            return self.reply(307, [("Location", target)], b"", head)
        auth = self.headers.get("Authorization")
        if repo not in hub.repos:
            return self.error(404 if auth else 401, "RepoNotFound", "Repository not found", head)
        if repo in hub.gated:
            if not auth:
                return self.error(401, "GatedRepo", "Access to model %s is restricted. You must have access to it "
                                  "and be authenticated to access it. Please log in." % repo, head)
            if auth != "Bearer " + hub.gated[repo]:
                return self.error(403, "GatedRepo", "Access to model %s is restricted and you are not in the "
                                  "authorized list. Visit https://huggingface.co/%s to ask for access." % (repo, repo), head)
        commit = hub.commit(repo, revision)
        if commit is None:
            return self.error(404, "RevisionNotFound", "Invalid rev id: " + revision, head)
        if name not in commit["files"]:
            return self.error(404, "EntryNotFound", "Entry not found", head, [("X-Repo-Commit", commit["sha"])])
        data = commit["files"][name]
        if hub.is_lfs(name):
            sha256 = hashlib.sha256(data).hexdigest()
            pointer = ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (sha256, len(data))).encode()
            # The repo is in the CDN path (as the Hub's xet/LFS CDN paths carry repo ids), for the faults.
            cdn = "%s/cdn/%s/%s?X-Amz-Signature=fake" % (Handler.cdn_base, commit["repo"], sha256)
            return self.reply(302, [("Location", cdn),
                                    ("X-Repo-Commit", commit["sha"]), ("X-Linked-Etag", '"%s"' % sha256),
                                    ("X-Linked-Size", str(len(data))), ("ETag", '"%s"' % git_blob_sha1(pointer))],
                              b"Found. Redirecting", head)
        self.send_bytes(repo, name, data, [("X-Repo-Commit", commit["sha"]), ("ETag", '"%s"' % git_blob_sha1(data))], head)

    def serve_cdn(self, repo, sha256, head):
        if self.headers.get("Authorization"):
            return self.reply(400, [], b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism "
                              b"allowed</Message></Error>", head)
        if (repo, sha256) not in Handler.hub.blobs:
            return self.reply(404, [], b"<Error><Code>NoSuchKey</Code></Error>", head)
        name, data = Handler.hub.blobs[(repo, sha256)]
        self.send_bytes(repo, name, data, [("ETag", '"%s"' % sha256)], head)

    def send_bytes(self, repo, name, data, headers, head):
        fault = None if head else Handler.hub.fault_for(repo, name)
        if fault == "corrupt":
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0x5A]) + data[middle + 1:]
        start = 0
        range_header = self.headers.get("Range")
        if range_header and fault != "ignore-range":
            start = int(range_header.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                return self.reply(416, [("Content-Range", "bytes */%d" % len(data))], b"", head)
        status = 206 if start else 200
        extra = [("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))] if start else []
        body = data[start:]
        self.send_response(status)
        for k, v in headers + extra + [("Accept-Ranges", "bytes"), ("Content-Type", "application/octet-stream")]:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if head:
            return
        if fault in ("drop", "stall"):
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            if fault == "stall":
                time.sleep(3)
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # the client gave up first (stall)
                pass
            return
        self.wfile.write(body)


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hangs up mid-file is what the fault modes are for


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--cdn-host", default="localhost")
    p.add_argument("--repo", action="append", default=[])
    p.add_argument("--edit", action="append", default=[])
    p.add_argument("--remove", action="append", default=[])
    p.add_argument("--shard", action="append", default=[])
    p.add_argument("--gated", action="append", default=[])
    p.add_argument("--renamed", action="append", default=[])
    p.add_argument("--fault", action="append", default=[])
    args = p.parse_args()
    Handler.hub = Hub(args)
    Handler.log_file = args.log
    open(args.log, "w").close()
    server = QuietServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    Handler.cdn_base = "http://%s:%d" % (args.cdn_host, port)
    commits = {repo: {b: c["sha"] for b, c in branches.items()} for repo, branches in Handler.hub.repos.items()}
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"port": port, "commits": commits}, fh)
    os.rename(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()

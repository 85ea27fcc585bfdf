"""Dataset readers: the three formats load, and every malformed record is reported with its
file, line and field (or raised in strict mode)."""
from __future__ import annotations

import json

import pytest

from geovr.data.datasets import read_dataset, read_llava, read_vlm3r, read_vsi590k
from geovr.data.errors import RecordError


def conv(q="<video>\nHow far?", a="2.5"):
    return [{"from": "human", "value": q}, {"from": "gpt", "value": a}]


def write_jsonl(path, items):
    path.write_text("\n".join(i if isinstance(i, str) else json.dumps(i) for i in items) + "\n")
    return path


def test_vsi590k_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "vsi.jsonl", [
        {"id": "a", "video": "scannet/s0.mp4", "conversations": conv(), "question_type": "object_abs_distance"},
        {"id": "b", "video": "arkit/s1.mp4", "conversations": conv("<|video|>\nThese are frames. How many?", "3")},
        {"id": "c", "image": "img/x.jpg", "conversations": conv("<image>\nWhat?", "a cat")},  # image item: filtered
        "{not json",
        {"id": "e", "video": "x.mp4", "conversations": [{"from": "gpt", "value": "no question"}]},
        {"id": "f", "video": "", "conversations": conv()},
        {"id": "g", "video": "y.mp4", "conversations": conv("<video><video> twice", "x")},
        {"id": "h", "video": "z.mp4", "conversations": [{"from": "human", "value": "<video> q"}]},
        {"id": "i", "video": "z.mp4", "conversations": [{"from": "robot", "value": "<video> q"}, {"from": "gpt", "value": "x"}]},
        "",
        [1, 2],
    ])
    res = read_vsi590k(str(path), media_root="/data/videos")
    assert [r.id for r in res.records] == ["a", "b"]
    assert res.records[0].media == "/data/videos/scannet/s0.mp4" and res.records[0].kind == "video"
    assert res.records[0].extra["question_type"] == "object_abs_distance"
    assert res.records[1].turns[0].text.startswith("<video>\n")  # <|video|> normalised
    assert res.filtered == 1
    where = {e.where.rsplit(":", 1)[1]: e.field for e in res.errors}
    assert where == {"4": "<line>", "5": "conversations", "6": "video", "7": "conversations", "8": "conversations",
                     "9": "conversations[0].from", "11": "<record>"}
    assert all(str(path) in str(e) for e in res.errors)
    assert "alternate" in str(res.errors[1]) and "placeholders" in str(res.errors[3])
    with pytest.raises(RecordError, match=r"vsi.jsonl:4: field '<line>'"):
        read_vsi590k(str(path), strict=True)


def test_vlm3r_json_list(tmp_path):
    items = [{"id": i, "video": f"scannet/scene{i:04d}_00.mp4", "conversations": conv(),
              "question_type": "object_rel_direction", "data_source": "scannet"} for i in range(3)]
    items.append({"id": 9, "video": "v.mp4", "conversations": "not a list"})
    (tmp_path / "vlm3r_vsi_205k.json").write_text(json.dumps(items))
    res = read_vlm3r(str(tmp_path / "vlm3r_vsi_205k.json"))
    assert len(res.records) == 3 and res.records[2].id == "2"
    assert res.records[0].media == str(tmp_path / "scannet/scene0000_00.mp4")  # relative to the file
    assert len(res.errors) == 1 and res.errors[0].where.endswith("[3]") and res.errors[0].field == "conversations"
    (tmp_path / "broken.json").write_text("[{\"id\": 1,")
    with pytest.raises(RecordError, match="not valid json"):
        read_vlm3r(str(tmp_path / "broken.json"))


def test_llava_generic_json_and_jsonl(tmp_path):
    items = [
        {"id": "v", "video": "a.mp4", "conversations": conv("Describe the room.", "A kitchen.")},  # no tag: inserted
        {"id": "i", "image": "b.png", "conversations": conv("<image>\nWhat colour?", "red")},
        {"id": "v2", "video": "c.mp4", "conversations": conv("<image>\nA video tagged as image", "ok")},
        {"id": "t", "conversations": conv("text only", "ok")},
        {"id": "m", "video": "d.mp4", "conversations": [{"role": "user", "content": "<video> q"},
                                                      {"role": "assistant", "content": "a"}]},
    ]
    for name in ("l.json", "l.jsonl"):
        p = tmp_path / name
        if name.endswith(".json"):
            p.write_text(json.dumps(items))
        else:
            write_jsonl(p, items)
        res = read_llava(str(p))
        assert [r.id for r in res.records] == ["v", "i", "v2", "m"] and res.filtered == 1 and not res.errors
        kinds = {r.id: r.kind for r in res.records}
        assert kinds == {"v": "video", "i": "image", "v2": "video", "m": "video"}
        texts = {r.id: r.turns[0].text for r in res.records}
        assert texts["v"] == "<video>\nDescribe the room." and texts["v2"].startswith("<video>")
        assert texts["i"].startswith("<image>")
    assert [r.id for r in read_dataset("vsi590k", str(tmp_path / "l.jsonl")).records] == ["v", "v2", "m"]
    with pytest.raises(ValueError, match="dataset format must be one of"):
        read_dataset("coco", str(tmp_path / "l.jsonl"))
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        read_llava(str(tmp_path / "nope.json"))


def test_vlm3r_videos_come_from_the_vsi590k_tree_and_both_files_share_them(tmp_path):
    """As the release: `<root>/<data_source>/<scene_name>.mp4`, ScanNet++ under scannetppv2, so a
    VLM-3R question and a VSI-590K question about one scene name the same video (and group)."""
    from geovr.data.video_groups import video_groups

    vlm = [{"id": 0, "data_source": "scannetpp", "scene_name": "abc", "video": "elsewhere/abc.mp4",
            "conversations": conv()},
           {"id": 1, "data_source": "scannet", "scene_name": "scene0001_00", "conversations": conv()},
           {"id": 2, "video": "arkitscenes/42.mp4", "conversations": conv()}]
    (tmp_path / "vlm3r.json").write_text(json.dumps(vlm))
    vsi = [{"id": 0, "video": "scannetppv2/abc.mp4", "conversations": conv()},
           {"id": 7, "video": "scannet/scene0001_00.mp4", "conversations": conv()}]
    (tmp_path / "vsi.jsonl").write_text("\n".join(json.dumps(x) for x in vsi))
    root = tmp_path / "videos"
    res = read_vlm3r(str(tmp_path / "vlm3r.json"), media_root=str(root))
    assert [r.media_rel for r in res.records] == ["scannetppv2/abc.mp4", "scannet/scene0001_00.mp4",
                                                  "arkitscenes/42.mp4"]
    both = read_dataset("vsi590k,vlm3r", f"{tmp_path / 'vsi.jsonl'},{tmp_path / 'vlm3r.json'}", str(root))
    assert [r.id for r in both.records] == ["0", "7", "0@vlm3r.json", "1", "2"]  # a repeated id is made unique
    assert [r.source for r in both.records] == ["vsi590k"] * 2 + ["vlm3r"] * 3
    assert video_groups(both.records) == [[0, 2], [1, 3], [4]]
    with pytest.raises(ValueError, match="2 formats for 3 files"):
        read_dataset("vsi590k,vlm3r", "a,b,c")

"""One value per option, numbers in ASCII, ids a URL can carry: the parser,
the id rule and the SDK's URL paths, without servers."""

from __future__ import annotations

import pydantic
import pytest
from percept import errors as sdk_errors
from percept.transport import rest as sdk_rest

from gateway import models, protoform
from gateway.errors import ApiError
from gateway.kinds import KINDS
from percept_runtime import ids
from percept_runtime.errors import InvalidInput

BY_ID = {k.id: k for k in KINDS}
FACE_IMAGE = BY_ID["face_detection:image"]
FACE_VIDEO = BY_ID["face_detection:video"]
OBJECT_IMAGE = BY_ID["object_detection:image"]
IDENTIFY = BY_ID["face_identification:image"]

DOTS = (".", "..", "...")
# Arabic-Indic one, fullwidth two, superscript two, padded, Python-only spellings.
NOT_ASCII_INTEGERS = ("١", "２", "²", " 2", "2 ", "\t2", "1_0", "+2", "2.0", "")
NOT_ASCII_DECIMALS = ("٠.5", "０.５", "0.5²", " 0.5", "0.5 ", "0_5", "+0.5", "inf", "nan", "")


def refused(build, raw) -> ApiError:
    with pytest.raises(ApiError) as info:
        build(b"x", raw)
    assert info.value.status == 422 and info.value.code == "invalid_option"
    return info.value


# --- one value per option --------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["upsample", "confidence_threshold", "landmarks", "detector", "classes", "wait"]
)
def test_a_query_parameter_given_twice_is_refused_naming_it(name):
    with pytest.raises(ApiError) as info:
        protoform.options_of([(name, "1"), ("other", "x"), (name, "2")], {}, ("wait",))
    assert info.value.status == 422 and info.value.fields == [name]
    assert f"{name} is given twice as a query parameter" in info.value.message
    assert "send each option once" in info.value.message


def test_the_same_option_in_the_query_and_the_form_is_refused():
    with pytest.raises(ApiError) as info:
        protoform.options_of([("collection_id", "a")], {"collection_id": "b"})
    assert info.value.fields == ["collection_id"]
    assert "both as a query parameter and as a form field" in info.value.message


def test_options_given_once_each_merge_and_skip_what_the_route_reads_itself():
    merged = protoform.options_of(
        [("upsample", "2"), ("wait", "true")], {"landmarks": "true"}, ("wait",)
    )
    assert merged == {"upsample": "2", "landmarks": "true"}


# --- numbers: ASCII digits, nothing around them ----------------------------------------


@pytest.mark.parametrize("text", NOT_ASCII_INTEGERS)
@pytest.mark.parametrize(("kind", "name"), [(FACE_IMAGE, "upsample"), (FACE_VIDEO, "max_frames")])
def test_integers_are_ascii_digits_only(kind, name, text):
    error = refused(kind.build, {name: text})
    assert error.fields == [name]
    assert "is not valid: use an integer in ASCII digits (0-9, no spaces)" in error.message


@pytest.mark.parametrize("text", NOT_ASCII_DECIMALS)
def test_decimals_are_ascii_digits_only(text):
    error = refused(OBJECT_IMAGE.build, {"confidence_threshold": text})
    assert error.fields == ["confidence_threshold"]
    assert "use a finite number in ASCII digits, such as 0.25" in error.message


@pytest.mark.parametrize(("name", "text"), [("landmarks", " true"), ("detector", "cnn ")])
def test_bools_and_enums_take_the_value_exactly(name, text):
    assert refused(FACE_IMAGE.build, {name: text}).fields == [name]


def test_ascii_numbers_still_parse():
    request = OBJECT_IMAGE.build(
        b"i", {"confidence_threshold": "0.5", "iou_threshold": ".7", "max_detections": "12"}
    )
    assert request.options.confidence_threshold == pytest.approx(0.5)
    assert request.options.iou_threshold == pytest.approx(0.7)
    assert request.options.max_detections == 12


def test_a_negative_integer_is_a_range_error_not_a_spelling_error():
    error = refused(FACE_IMAGE.build, {"upsample": "-1"})
    assert "[0, 3]" in error.message


def test_list_items_are_ascii_too():
    # class ids: '²' and '١' are not ids; they are names the model will not know
    request = OBJECT_IMAGE.build(b"i", {"classes": "1, ²,١"})
    assert list(request.options.class_ids) == [1]
    assert list(request.options.class_names) == ["²", "١"]
    error = refused(OBJECT_IMAGE.build, {"classes": "99999999999"})
    assert error.fields == ["classes"] and "out of range" in error.message


@pytest.mark.parametrize("text", ["١", " 2", "2 ", "1_0", "+2"])
def test_identify_numbers_are_ascii_too(text):
    error = refused(IDENTIFY.build, {"collection_id": "c", "top_k": text})
    assert error.fields == ["top_k"]


@pytest.mark.parametrize(
    ("field", "text"),
    [("top_k", "١"), ("top_k", " 2"), ("top_k", "2 "), ("threshold", "０.５"), ("threshold", " 1")],
)
def test_json_bodies_take_numbers_as_ascii_strings_only(field, text):
    with pytest.raises(pydantic.ValidationError) as info:
        models.SearchRequest.model_validate({"face_id": "f", field: text})
    assert "ASCII digits" in info.value.errors()[0]["msg"]
    ok = models.SearchRequest.model_validate({"face_id": "f", "top_k": "2", "threshold": "0.5"})
    assert (ok.top_k, ok.threshold) == (2, 0.5)


# --- ids a URL path can carry ------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [*DOTS, "....", "", "a/b", "a?b", "a#b", "a%b", "a\\b", " a", "a b"]
)
def test_new_collection_ids_must_be_reachable(bad):
    problem = ids.collection_id_problem(bad)
    assert problem is not None and ids.COLLECTION_ID_RULE in problem
    with pytest.raises(InvalidInput):
        ids.check_collection_id(bad, new=True)
    with pytest.raises(pydantic.ValidationError) as info:
        models.NewCollection(collection_id=bad)
    assert info.value.errors()[0]["msg"] == problem


@pytest.mark.parametrize("good", ["a", "a.b", ".a", "a..", "-_.", "x" * 64])
def test_ids_with_dots_and_something_else_are_fine(good):
    assert ids.collection_id_problem(good) is None
    assert models.NewCollection(collection_id=good).collection_id == good


def test_an_existing_all_dots_collection_can_still_be_named_over_grpc():
    assert ids.check_collection_id("..") == ".."  # a lookup: it may predate the rule
    with pytest.raises(InvalidInput, match="only dots"):
        ids.check_collection_id("..", new=True)


@pytest.mark.parametrize("bad", [*DOTS, "a/..", "../b", "a/./b"])
def test_new_subjects_must_be_reachable(bad):
    assert "cannot be used" in ids.subject_problem(bad)


@pytest.mark.parametrize("good", ["Ada", "Dr. J.", "AC/DC", "a/...b", "..a"])
def test_subjects_with_dots_among_other_characters_are_fine(good):
    assert ids.subject_problem(good) is None


def test_the_gallery_uses_the_same_rule():
    from face_service.gallery import store

    with pytest.raises(store.InvalidInput, match="only dots"):
        store.check_collection_id("...", new=True)
    with pytest.raises(store.InvalidInput, match="cannot be used"):
        store.check_new_subject("..")
    assert store.check_subject("..") == ".."  # deleting a legacy subject by name still works


# --- the SDK never sends a dots-only path segment -----------------------------------------


@pytest.mark.parametrize("dots", DOTS)
def test_the_sdk_refuses_a_path_it_cannot_send(dots):
    client = sdk_rest.Client("http://127.0.0.1:9")  # never contacted
    calls = [
        (lambda: client.collection(dots), "collection_id"),
        (lambda: client.delete_collection(dots), "collection_id"),
        (lambda: client.delete_subject("people", dots), "subject"),
        (lambda: client.delete_face("people", dots), "face_id"),
    ]
    for call, field in calls:
        with pytest.raises(sdk_errors.InvalidInput) as info:
            call()
        assert info.value.fields == (field,)
        assert "only dots: a URL path cannot carry" in info.value.message

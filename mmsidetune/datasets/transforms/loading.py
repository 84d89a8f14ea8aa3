"""mmseg's label-map loading, with errors that name the file."""
from mmcv.transforms import BaseTransform
from mmengine.registry import TRANSFORMS

__all__ = ['LoadSegAnnotations']


@TRANSFORMS.register_module()
class LoadSegAnnotations(BaseTransform):
    """mmseg 1.x's ``LoadAnnotations`` (same arguments, same results), whose decoding errors
    name the label map.

    mmseg decodes the PNG with Pillow from bytes, so a damaged label map fails with
    ``UnidentifiedImageError: cannot identify image file <_io.BytesIO object at 0x...>``, which
    names no file. Here it raises ``ValueError`` naming ``seg_map_path`` and the cause.
    Composition, not a subclass: mmsidetune does not import mmseg unless a config uses this.

    Raises:
        FileNotFoundError: a missing label map (mmengine's fileio, names the file).
        ValueError: a label map that cannot be decoded.
    """

    def __init__(self, **kwargs):
        from mmseg.datasets.transforms import LoadAnnotations
        self.loader = LoadAnnotations(**kwargs)

    def transform(self, results: dict) -> dict:
        try:
            return self.loader.transform(results)
        except FileNotFoundError:
            raise
        except Exception as e:  # noqa: BLE001  (Pillow / cv2 raise several types)
            raise ValueError(f'cannot read label map {results.get("seg_map_path")} of image '
                             f'{results.get("img_path")}: {type(e).__name__}: {e}') from e

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.loader!r})'

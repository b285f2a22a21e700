"""Per-image geometric transforms of a whole batch: 3 x 3 sampling matrices and one resampling pass.

Every matrix maps an output pixel position to the input position it samples, in pixel units with
the origin at the image centre, x to the right and y down. Composing transforms is then a matrix
product, and a batch with a different transform per image is warped by one ``grid_sample`` call.
Positions follow torchvision's tensor kernels: pixel ``j`` covers ``[j, j + 1)``, its centre is at
``j + 0.5``, and samples from outside the image read 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """Return the sampling matrices of a counter-clockwise rotation by ``angles`` degrees, shape (N, 3, 3).

    The sign convention is torchvision's ``rotate``: a positive angle turns the image
    counter-clockwise as displayed (y pointing down).
    """
    radians = angles * (math.pi / 180)
    cos, sin = torch.cos(radians), torch.sin(radians)
    matrices = _identity(len(angles), angles)
    matrices[:, 0, 0] = cos
    matrices[:, 0, 1] = -sin
    matrices[:, 1, 0] = sin
    matrices[:, 1, 1] = cos
    return matrices


def resized_crop_matrices(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Return the sampling matrices that resize the crops ``boxes`` to the full image, shape (N, 3, 3).

    ``boxes`` has one row ``(top, left, crop_height, crop_width)`` in pixels per image, as returned by
    ``RandomResizedCrop.get_params``.
    """
    top, left, crop_height, crop_width = boxes.unbind(dim=1)
    matrices = _identity(len(boxes), boxes)
    matrices[:, 0, 0] = crop_width / width
    matrices[:, 1, 1] = crop_height / height
    matrices[:, 0, 2] = left + crop_width / 2 - width / 2
    matrices[:, 1, 2] = top + crop_height / 2 - height / 2
    return matrices


def perspective_matrices(startpoints: torch.Tensor, endpoints: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Return the sampling matrices of perspective transforms, shape (N, 3, 3).

    ``startpoints`` and ``endpoints`` have shape (N, 4, 2) or (4, 2): the (x, y) pixel positions of the
    corners [top-left, top-right, bottom-right, bottom-left] before and after the transform, the
    arguments of torchvision's ``perspective``. Each homography is solved in float64, because the
    8 x 8 system is badly conditioned in float32.
    """
    endpoints = endpoints.to(torch.float64)
    startpoints = startpoints.to(torch.float64).expand_as(endpoints)
    count = len(endpoints)

    # Sampling maps the corners after the transform back to where they came from:
    # x_in = (a x + b y + c) / (g x + h y + 1), y_in = (d x + e y + f) / (g x + h y + 1).
    x, y = endpoints[..., 0], endpoints[..., 1]
    x_in, y_in = startpoints[..., 0], startpoints[..., 1]
    ones, zeros = torch.ones_like(x), torch.zeros_like(x)
    rows_x = torch.stack([x, y, ones, zeros, zeros, zeros, -x_in * x, -x_in * y], dim=-1)
    rows_y = torch.stack([zeros, zeros, zeros, x, y, ones, -y_in * x, -y_in * y], dim=-1)
    system = torch.stack([rows_x, rows_y], dim=2).reshape(count, 8, 8)
    targets = torch.stack([x_in, y_in], dim=2).reshape(count, 8)
    coefficients = torch.linalg.solve(system, targets)

    corner_matrices = torch.cat(
        [coefficients, torch.ones(count, 1, dtype=torch.float64, device=endpoints.device)], dim=1
    )
    corner_matrices = corner_matrices.view(count, 3, 3)

    # The corner points are given with the origin at the top-left image corner; move it to the centre.
    to_corner = _identity(1, corner_matrices)
    to_corner[0, 0, 2] = width / 2
    to_corner[0, 1, 2] = height / 2
    return (torch.linalg.inv(to_corner) @ corner_matrices @ to_corner).to(torch.float32)


def warp(images: torch.Tensor, matrices: torch.Tensor, projective: bool = True) -> torch.Tensor:
    """Resample each image of a (N, C, H, W) float batch through its own sampling matrix.

    Bilinear interpolation with zeros outside the image, as torchvision's tensor transforms use.
    ``projective=False`` promises that every matrix is affine (last row 0, 0, 1), which allows the
    cheaper ``affine_grid``.
    """
    count, _, height, width = images.shape

    # Scale the matrices to grid_sample's coordinates, where the image spans [-1, 1] on both axes.
    to_pixels = torch.diag(torch.tensor([width / 2, height / 2, 1.0], device=images.device))
    to_normalised = torch.diag(torch.tensor([2 / width, 2 / height, 1.0], device=images.device))
    normalised = to_normalised @ matrices.to(device=images.device, dtype=torch.float32) @ to_pixels

    if projective:
        # affine_grid with the identity gives the output pixel centres; the division by the third
        # homogeneous coordinate is what an affine grid cannot express.
        identity = torch.eye(2, 3, device=images.device).unsqueeze(0)
        centres = F.affine_grid(identity, [1, 1, height, width], align_corners=False)
        centres = torch.cat([centres, torch.ones_like(centres[..., :1])], dim=-1).view(1, height * width, 3)
        points = centres @ normalised.transpose(1, 2)
        grid = (points[..., :2] / points[..., 2:]).view(count, height, width, 2)
    else:
        grid = F.affine_grid(normalised[:, :2], [count, 1, height, width], align_corners=False)

    grid = grid.to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def pad_crop(images: torch.Tensor, padding: int, offsets: torch.Tensor) -> torch.Tensor:
    """Zero-pad a (N, C, H, W) batch by ``padding`` pixels and crop each image back to H x W.

    ``offsets`` has one row ``(top, left)`` per image, in [0, 2 * padding], the corner of the crop in
    the padded image (``RandomCrop(size, padding)`` draws them uniformly). Pixels are copied, not
    interpolated, so the result equals torchvision's pad followed by crop exactly.
    """
    count, _, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = offsets[:, 0:1] + torch.arange(height, device=images.device)  # (N, H)
    columns = offsets[:, 1:2] + torch.arange(width, device=images.device)  # (N, W)
    batch = torch.arange(count, device=images.device).view(count, 1, 1)

    # Advanced indexing over (batch, row, column) moves the channel axis last; move it back.
    cropped = padded.permute(0, 2, 3, 1)[batch, rows.view(count, height, 1), columns.view(count, 1, width)]
    return cropped.permute(0, 3, 1, 2).contiguous()


def _identity(count: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(3, dtype=like.dtype, device=like.device).repeat(count, 1, 1)

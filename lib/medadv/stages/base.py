"""What every stage module shares: its config dataclass is loaded from the profile one way,
``Config.from_profile(profile)``.

A stage config is the frozen dataclass of its profile section (``classifier``, ``gan``, ...), defined in the domain
package that uses it, with :class:`ProfileSection` mixed in by the stage module. The domain loaders
(:func:`medadv.train.loop.classifier_config`, :func:`medadv.explain.study.explain_config`, ...) keep working and
build the same values.
"""
from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from medadv.config import section_config

C = TypeVar("C", bound="ProfileSection")

__all__ = ["ProfileSection"]


class ProfileSection:
    """Mixin for a frozen config dataclass read from one section of a profile.

    Subclasses set ``SECTION`` to the profile section's name.
    """

    SECTION: ClassVar[str]

    @classmethod
    def from_profile(cls: type[C], profile: Any) -> C:
        """The profile's ``SECTION`` section as this dataclass.

        Args:
            profile: a :class:`medadv.config.Profile` (``ctx.profile`` in a notebook).

        Returns:
            the config; missing keys take the dataclass defaults.

        Raises:
            ConfigError: the section holds a key the dataclass does not know, or a value it refuses.
        """
        return section_config(cls, profile.section(cls.SECTION), cls.SECTION)

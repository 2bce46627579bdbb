from kagentbot.persona.model import DEFAULT_PERSONA, Persona

__all__ = ["DEFAULT_PERSONA", "Persona"]

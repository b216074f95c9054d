from services.redirect.app import create_app
from services.redirect.settings import Settings
from shared.runner import run_service


def main() -> None:
    settings = Settings()
    run_service(create_app(settings), settings, access_log=False)


if __name__ == "__main__":
    main()
